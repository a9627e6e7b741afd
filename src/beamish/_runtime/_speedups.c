/* beamish._runtime._speedups: the send hot path and the scheduler's dispatch, in C.
 *
 * send() is the hottest function of the runtime: every message goes through it. This module
 * does exactly what the pure-Python send in api.py does, for the common cases, without the
 * interpreter's per-operation cost:
 *
 *   - the destination is a Pid: its process record is read from the Pid's _proc slot;
 *   - isolation: a message whose type is in ATOMIC, or a tuple of such items, passes as it
 *     is; anything else goes through isolation.isolate (the same policy, the same set);
 *   - the message is appended to the process's mailbox (a collections.deque);
 *   - an actor that is neither queued nor busy is queued on its scheduler's run queue, and
 *     the scheduler is asked for a tick if none is pending.
 *
 * Every other case (a name as destination, no mailbox yet, a waiter to wake) is handed to
 * the pure-Python send *before* anything is changed, so the two can never disagree on what
 * was delivered. Slot offsets are read from the classes' member descriptors at configure()
 * time, so this file knows no layout but what Python tells it.
 *
 * dispatch(scheduler) is scheduler._dispatch_py line by line: the loop of a tick that pops
 * actors from the run queue and calls their handle() for up to `reductions` messages each.
 * What is not the loop itself (a process that exits or crashes, an async handler to start)
 * calls back into the same Python methods the reference calls.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

static PyObject *PidType = NULL;          /* beamish Pid class */
static PyObject *ATOMIC = NULL;           /* isolation.ATOMIC (a set, shared with Python) */
static PyObject *py_send = NULL;          /* the pure-Python send */
static PyObject *py_isolate = NULL;       /* isolation.isolate */
static PyObject *py_tick = NULL;          /* fn(scheduler): ask the loop for a tick */
static PyObject *deque_append = NULL;     /* collections.deque.append */
static PyObject *str_scheduler = NULL;    /* "scheduler" */
static PyObject *str_handle = NULL;       /* "handle" */
static PyObject *str_started = NULL;      /* "started" */
static PyObject *deque_popleft = NULL;    /* collections.deque.popleft */
static PyObject *INIT = NULL;             /* process.INIT, an actor's first message */
static PyObject *HIBERNATE = NULL;        /* process.HIBERNATE, for the scheduler itself */
static PyObject *ProcessExitType = NULL;  /* beamish's ProcessExit */
static PyObject *py_stopped = NULL;       /* Scheduler._stopped(self, proc, stop) */
static PyObject *py_crashed = NULL;       /* Scheduler._crashed(self, proc, exc) */
static PyObject *py_start_async = NULL;   /* Scheduler._start_async(self, proc, result) */

static Py_ssize_t off_pid_proc, off_mailbox, off_actor, off_scheduled, off_busy, off_waiter,
    off_runtime, off_runq, off_pending, off_proc_pid, off_handled, off_current, off_cut,
    off_tick_budget, off_reductions;

#define SLOT(obj, off) (*(PyObject **)((char *)(obj) + (off)))

static int
slot_offset(PyObject *cls, const char *name, Py_ssize_t *out)
{
    PyObject *descr = PyObject_GetAttrString(cls, name);
    if (descr == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(descr, &PyMemberDescr_Type)) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not a __slots__ member", cls, name);
        Py_DECREF(descr);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != T_OBJECT_EX && member->type != T_OBJECT) {
        PyErr_Format(PyExc_TypeError, "%R.%s is not an object slot", cls, name);
        Py_DECREF(descr);
        return -1;
    }
    *out = member->offset;
    Py_DECREF(descr);
    return 0;
}

/* dispatch reads a deque's length as Py_SIZE (CPython's deque keeps it in ob_size, a
   detail of its layout): make sure once, at configure(), rather than trust it */
static int
check_deque_length(PyObject *deque_type)
{
    PyObject *probe = PyObject_CallNoArgs(deque_type);
    if (probe == NULL) {
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        PyObject *done = PyObject_CallMethod(probe, "append", "O", Py_None);
        if (done == NULL) {
            Py_DECREF(probe);
            return -1;
        }
        Py_DECREF(done);
    }
    int right = Py_SIZE(probe) == 3 && PyObject_Size(probe) == 3;
    Py_DECREF(probe);
    if (!right) {
        PyErr_SetString(PyExc_ImportError,
                        "beamish._speedups: this Python's deque does not keep its length "
                        "where dispatch reads it; use BEAMISH_PURE_PYTHON=1");
        return -1;
    }
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args)
{
    PyObject *pid_type, *process_type, *scheduler_type, *atomic, *send, *isolate, *tick;
    PyObject *init, *hibernate, *process_exit, *stopped, *crashed, *start_async;
    if (!PyArg_ParseTuple(args, "OOOO!OOOOOOOOO", &pid_type, &process_type, &scheduler_type,
                          &PySet_Type, &atomic, &send, &isolate, &tick, &init, &hibernate,
                          &process_exit, &stopped, &crashed, &start_async)) {
        return NULL;
    }
    if (slot_offset(pid_type, "_proc", &off_pid_proc) < 0
        || slot_offset(process_type, "mailbox", &off_mailbox) < 0
        || slot_offset(process_type, "actor", &off_actor) < 0
        || slot_offset(process_type, "scheduled", &off_scheduled) < 0
        || slot_offset(process_type, "busy", &off_busy) < 0
        || slot_offset(process_type, "waiter", &off_waiter) < 0
        || slot_offset(process_type, "runtime", &off_runtime) < 0
        || slot_offset(scheduler_type, "runq", &off_runq) < 0
        || slot_offset(scheduler_type, "pending", &off_pending) < 0
        || slot_offset(process_type, "pid", &off_proc_pid) < 0
        || slot_offset(process_type, "handled", &off_handled) < 0
        || slot_offset(scheduler_type, "current", &off_current) < 0
        || slot_offset(scheduler_type, "cut", &off_cut) < 0
        || slot_offset(scheduler_type, "tick_budget", &off_tick_budget) < 0
        || slot_offset(scheduler_type, "reductions", &off_reductions) < 0) {
        return NULL;
    }
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections == NULL) {
        return NULL;
    }
    PyObject *deque = PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (deque == NULL) {
        return NULL;
    }
    if (check_deque_length(deque) < 0) {
        Py_DECREF(deque);
        return NULL;
    }
    PyObject *append = PyObject_GetAttrString(deque, "append");
    PyObject *popleft = append == NULL ? NULL : PyObject_GetAttrString(deque, "popleft");
    Py_DECREF(deque);
    if (popleft == NULL) {
        Py_XDECREF(append);
        return NULL;
    }
    Py_XSETREF(deque_append, append);
    Py_XSETREF(deque_popleft, popleft);
    Py_XSETREF(INIT, Py_NewRef(init));
    Py_XSETREF(HIBERNATE, Py_NewRef(hibernate));
    Py_XSETREF(ProcessExitType, Py_NewRef(process_exit));
    Py_XSETREF(py_stopped, Py_NewRef(stopped));
    Py_XSETREF(py_crashed, Py_NewRef(crashed));
    Py_XSETREF(py_start_async, Py_NewRef(start_async));
    Py_INCREF(pid_type);
    Py_XSETREF(PidType, pid_type);
    Py_INCREF(atomic);
    Py_XSETREF(ATOMIC, atomic);
    Py_INCREF(send);
    Py_XSETREF(py_send, send);
    Py_INCREF(isolate);
    Py_XSETREF(py_isolate, isolate);
    Py_INCREF(tick);
    Py_XSETREF(py_tick, tick);
    if (str_scheduler == NULL) {
        str_scheduler = PyUnicode_InternFromString("scheduler");
        str_handle = PyUnicode_InternFromString("handle");
        str_started = PyUnicode_InternFromString("started");
        if (str_scheduler == NULL || str_handle == NULL || str_started == NULL) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
fallback(PyObject *dest, PyObject *message)
{
    PyObject *call_args[2] = {dest, message};
    return PyObject_Vectorcall(py_send, call_args, 2, NULL);
}

/* 1: immutable as it is; 0: needs isolate(); -1: error */
static int
is_atomic(PyObject *message)
{
    int found = PySet_Contains(ATOMIC, (PyObject *)Py_TYPE(message));
    if (found != 0) {
        return found;
    }
    if (!PyTuple_CheckExact(message)) {
        return 0;
    }
    Py_ssize_t size = PyTuple_GET_SIZE(message);
    for (Py_ssize_t i = 0; i < size; i++) {
        found = PySet_Contains(ATOMIC, (PyObject *)Py_TYPE(PyTuple_GET_ITEM(message, i)));
        if (found != 1) {
            return found;
        }
    }
    return 1;
}

static void
set_slot(PyObject *obj, Py_ssize_t off, PyObject *value)
{
    PyObject *old = SLOT(obj, off);
    Py_INCREF(value);
    SLOT(obj, off) = value;
    Py_XDECREF(old);
}

static PyObject *
send(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || py_send == NULL) {
        if (py_send == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "beamish._speedups is not configured");
            return NULL;
        }
        return PyObject_Vectorcall(py_send, args, nargs, NULL);
    }
    PyObject *dest = args[0], *message = args[1];
    if ((PyObject *)Py_TYPE(dest) != PidType) {
        return fallback(dest, message);  /* a registered name, or a wrong type */
    }
    PyObject *proc = SLOT(dest, off_pid_proc);
    if (proc == NULL || proc == Py_None) {
        return fallback(dest, message);  /* dead, or of another node: the cold branch */
    }
    PyObject *mailbox = SLOT(proc, off_mailbox);
    PyObject *actor = SLOT(proc, off_actor);
    if (mailbox == NULL || mailbox == Py_None
        || (actor != NULL && actor != Py_None && SLOT(proc, off_busy) == Py_True)
        || ((actor == NULL || actor == Py_None) && SLOT(proc, off_waiter) != Py_None)) {
        return fallback(dest, message);  /* first message, or someone to wake */
    }
    Py_INCREF(proc);
    int atomic = is_atomic(message);
    if (atomic < 0) {
        Py_DECREF(proc);
        return NULL;
    }
    PyObject *isolated;
    if (atomic) {
        isolated = Py_NewRef(message);
    }
    else {
        isolated = PyObject_CallOneArg(py_isolate, message);  /* may run user code */
        if (isolated == NULL) {
            Py_DECREF(proc);
            return NULL;
        }
        mailbox = SLOT(proc, off_mailbox);  /* re-read: user code ran */
        actor = SLOT(proc, off_actor);
        if (mailbox == NULL || mailbox == Py_None || SLOT(dest, off_pid_proc) != proc
            || (actor != NULL && actor != Py_None && SLOT(proc, off_busy) == Py_True)
            || ((actor == NULL || actor == Py_None) && SLOT(proc, off_waiter) != Py_None)) {
            Py_DECREF(proc);
            Py_DECREF(isolated);
            if (SLOT(dest, off_pid_proc) != proc) {
                Py_RETURN_NONE;  /* it exited meanwhile */
            }
            return fallback(dest, message);
        }
    }
    PyObject *append_args[2] = {mailbox, isolated};
    PyObject *done = PyObject_Vectorcall(deque_append, append_args, 2, NULL);
    Py_DECREF(isolated);
    if (done == NULL) {
        Py_DECREF(proc);
        return NULL;
    }
    Py_DECREF(done);
    if (actor != NULL && actor != Py_None && SLOT(proc, off_scheduled) != Py_True
        && SLOT(proc, off_busy) != Py_True) {
        /* queue the actor on its scheduler's run queue, ask for a tick if none is due */
        set_slot(proc, off_scheduled, Py_True);
        PyObject *scheduler = PyObject_GetAttr(SLOT(proc, off_runtime), str_scheduler);
        if (scheduler == NULL) {
            Py_DECREF(proc);
            return NULL;
        }
        PyObject *runq_args[2] = {SLOT(scheduler, off_runq), proc};
        done = PyObject_Vectorcall(deque_append, runq_args, 2, NULL);
        if (done == NULL) {
            Py_DECREF(scheduler);
            Py_DECREF(proc);
            return NULL;
        }
        Py_DECREF(done);
        if (SLOT(scheduler, off_pending) != Py_True) {
            set_slot(scheduler, off_pending, Py_True);
            done = PyObject_CallOneArg(py_tick, scheduler);
            if (done == NULL) {
                Py_DECREF(scheduler);
                Py_DECREF(proc);
                return NULL;
            }
            Py_DECREF(done);
        }
        Py_DECREF(scheduler);
    }
    Py_DECREF(proc);
    Py_RETURN_NONE;
}


/* the pid's process record is gone (it exited): _proc is None, or was never set */
static inline int
pid_dead(PyObject *pid)
{
    PyObject *proc = SLOT(pid, off_pid_proc);
    return proc == NULL || proc == Py_None;
}

static inline Py_ssize_t
queued(PyObject *mailbox)
{
    return (mailbox == NULL || mailbox == Py_None) ? 0 : Py_SIZE(mailbox);  /* deque length */
}

/* call hook(scheduler, proc, value); 0 on success */
static int
call_hook(PyObject *hook, PyObject *scheduler, PyObject *proc, PyObject *value)
{
    PyObject *hook_args[3] = {scheduler, proc, value};
    PyObject *done = PyObject_Vectorcall(hook, hook_args, 3, NULL);
    if (done == NULL) {
        return -1;
    }
    Py_DECREF(done);
    return 0;
}

/* the handler raised: ProcessExit or an Exception ends the process (0), anything else (a
   BaseException: KeyboardInterrupt, SystemExit, CancelledError) propagates (-1) */
static int
handler_raised(PyObject *scheduler, PyObject *proc)
{
    PyObject *hook;
    if (PyErr_ExceptionMatches(ProcessExitType)) {
        hook = py_stopped;
    }
    else if (PyErr_ExceptionMatches(PyExc_Exception)) {
        hook = py_crashed;
    }
    else {
        return -1;
    }
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    int failed = call_hook(hook, scheduler, proc, value);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return failed;
}

static PyObject *
dispatch(PyObject *module, PyObject *scheduler)
{
    if (deque_popleft == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "beamish._speedups is not configured");
        return NULL;
    }
    PyObject *runq = SLOT(scheduler, off_runq);
    long budget = PyLong_AsLong(SLOT(scheduler, off_tick_budget));
    long reductions = PyLong_AsLong(SLOT(scheduler, off_reductions));
    if (PyErr_Occurred()) {
        return NULL;
    }
    long handled_total = 0;
    Py_INCREF(runq);
    while (Py_SIZE(runq) > 0 && budget > 0) {
        PyObject *proc = PyObject_CallOneArg(deque_popleft, runq);
        if (proc == NULL) {
            goto error;
        }
        PyObject *actor = SLOT(proc, off_actor);
        if (actor == NULL || actor == Py_None || SLOT(proc, off_busy) == Py_True) {
            set_slot(proc, off_scheduled, Py_False);  /* exited, or in an async handler */
            Py_DECREF(proc);
            continue;
        }
        Py_INCREF(actor);
        set_slot(scheduler, off_current, proc);
        PyObject *mailbox = Py_NewRef(SLOT(proc, off_mailbox));
        PyObject *pid = Py_NewRef(SLOT(proc, off_proc_pid));
        long n = 0;
        int drop_empty = 0, failed = 0;  /* INIT or HIBERNATE taken: give an empty mailbox back */
        while (queued(mailbox) > 0 && n < reductions) {
            PyObject *message = PyObject_CallOneArg(deque_popleft, mailbox);
            if (message == NULL) {
                failed = 1;
                break;
            }
            n++;
            if (message == HIBERNATE) {  /* for the scheduler, not the actor */
                Py_DECREF(message);
                drop_empty = 1;
                continue;
            }
            PyObject *result;
            if (message == INIT) {
                drop_empty = 1;
                result = PyObject_CallMethodNoArgs(actor, str_started);
            }
            else {
                PyObject *method_args[3] = {NULL, actor, message};
                result = PyObject_VectorcallMethod(
                    str_handle, method_args + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
            }
            Py_DECREF(message);
            if (result == NULL) {
                if (handler_raised(scheduler, proc) < 0) {
                    failed = 1;
                }
                break;
            }
            if (result != Py_None) {  /* an async handler: a task finishes it */
                failed = call_hook(py_start_async, scheduler, proc, result) < 0;
                Py_DECREF(result);
                break;
            }
            Py_DECREF(result);
            if (pid_dead(pid)) {  /* the handler ended its own process */
                break;
            }
        }
        if (!failed) {
            PyObject *count = PyLong_FromLong(n);
            PyObject *handled = count == NULL ? NULL
                : PyNumber_Add(SLOT(proc, off_handled), count);
            Py_XDECREF(count);
            if (handled == NULL) {
                failed = 1;
            }
            else {
                set_slot(proc, off_handled, handled);
                Py_DECREF(handled);
            }
        }
        if (!failed) {
            handled_total += n;
            budget -= n;
            if (drop_empty && queued(mailbox) == 0 && SLOT(proc, off_mailbox) == mailbox) {
                set_slot(proc, off_mailbox, Py_None);  /* after INIT or HIBERNATE: idle needs none */
            }
            if (queued(mailbox) > 0 && !pid_dead(pid) && SLOT(proc, off_busy) != Py_True) {
                PyObject *append_args[2] = {runq, proc};
                PyObject *done = PyObject_Vectorcall(deque_append, append_args, 2, NULL);
                if (done == NULL) {
                    failed = 1;
                }
                Py_XDECREF(done);
            }
            else {
                set_slot(proc, off_scheduled, Py_False);
            }
        }
        Py_DECREF(actor);
        Py_DECREF(mailbox);
        Py_DECREF(pid);
        Py_DECREF(proc);
        if (failed) {
            goto error;
        }
        if (SLOT(scheduler, off_cut) == Py_True) {
            break;
        }
    }
    Py_DECREF(runq);
    return PyLong_FromLong(handled_total);
error:
    Py_DECREF(runq);
    return NULL;
}


/* -- hosted processes ------------------------------------------------------------------------
 *
 * A plain `with` block run as a process (Runtime.process_block(), which every HTTP request's
 * process is): the common path of AsProcess, in C. Two types:
 *
 *   - Host, one per running runtime, holds what the path reads of the runtime (its process
 *     table, pid counter, node, hosted-task table, loop, process limit, whether it is open
 *     for new processes) as direct references, and counts the processes it made and ended
 *     (Runtime.spawned and .exited add them). make(parent, task) is Runtime._new_process's
 *     path for a block with no name, link or trap_exit; end(proc) is Signals._exit_process's
 *     for an exit "normal" from inside with nobody to tell. Each returns None/False having
 *     changed nothing for every other case (the runtime closed, the limit reached, a name,
 *     timers, links, monitors, an exit hook...): the Python methods then do it all.
 *   - Block, what Host.block() returns: __enter__ and __exit__ do AsProcess's, calling the
 *     same Python helpers (runtime._hosted_slow, runtime._leave_block) for every case that
 *     is not the common one.
 *
 * configure_host checks that Process's slots are exactly the ones set here, so a slot added
 * in Python turns this path off rather than leaving it unset. */

enum {
    P_ACTOR, P_BUSY, P_CONTEXT, P_EXIT_REASON, P_HANDLED, P_INITIAL, P_LINKS, P_MAILBOX,
    P_MONITORS, P_NAME, P_PARENT, P_PID, P_RUNTIME, P_SCHEDULED, P_TASK, P_TIMERS,
    P_TRAP_EXIT, P_WAITER, P_WATCHERS, N_PROC_SLOTS
};
static const char *proc_slots[N_PROC_SLOTS] = {
    "actor", "busy", "context", "exit_reason", "handled", "initial", "links", "mailbox",
    "monitors", "name", "parent", "pid", "runtime", "scheduled", "task", "timers",
    "trap_exit", "waiter", "watchers",
};
static Py_ssize_t proc_off[N_PROC_SLOTS];
static Py_ssize_t off_pid_node, off_pid_id;
static PyTypeObject *HostPid = NULL, *HostProcess = NULL, *HostScheduler = NULL;
static PyObject *exit_event = NULL;    /* the ("beamish", "process", "exit") Event */
static PyObject *spawn_event = NULL;   /* the ("beamish", "process", "spawn") Event */
static PyObject *current_var = NULL;   /* context.CURRENT */
static PyObject *current_task = NULL;  /* asyncio.current_task */
static PyObject *py_hosted_slow = NULL;  /* runtime._hosted_slow(runtime, parent, task) */
static PyObject *py_leave_block = NULL;  /* runtime._leave_block(runtime, proc, exc) */
static PyObject *py_spawned = NULL;      /* runtime._emit_spawn(pid) */
static PyObject *s_handlers, *s_normal, *int_zero;

static int
intern_all(void)
{
    if (s_handlers == NULL && (s_handlers = PyUnicode_InternFromString("handlers")) == NULL)
        return -1;
    if (s_normal == NULL && (s_normal = PyUnicode_InternFromString("normal")) == NULL)
        return -1;
    if (int_zero == NULL && (int_zero = PyLong_FromLong(0)) == NULL)
        return -1;
    return 0;
}

#define KEEP(global, value) do { Py_INCREF(value); Py_XSETREF(global, value); } while (0)

static PyObject *
configure_host(PyObject *module, PyObject *args)
{
    PyObject *pid_type, *process_type, *scheduler_type, *exits, *spawns, *var, *task_of,
        *slow, *leave, *spawned;
    if (!PyArg_ParseTuple(args, "O!O!O!OOOOOOO", &PyType_Type, &pid_type, &PyType_Type,
                          &process_type, &PyType_Type, &scheduler_type, &exits, &spawns, &var,
                          &task_of, &slow, &leave, &spawned))
        return NULL;
    if (PidType == NULL || pid_type != PidType) {
        PyErr_SetString(PyExc_RuntimeError, "configure_host: configure() first, same Pid");
        return NULL;
    }
    if (intern_all() < 0)
        return NULL;
    PyObject *declared = PyObject_GetAttrString(process_type, "__slots__");
    if (declared == NULL)
        return NULL;
    int same = PyTuple_Check(declared) && PyTuple_GET_SIZE(declared) == N_PROC_SLOTS;
    for (Py_ssize_t i = 0; same && i < N_PROC_SLOTS; i++) {
        same = PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(declared, i),
                                                proc_slots[i]) == 0;
    }
    Py_DECREF(declared);
    if (!same) {
        PyErr_SetString(PyExc_ImportError,
                        "beamish._speedups: Process's __slots__ are not the ones Host sets");
        return NULL;
    }
    if (!PyObject_TypeCheck(var, &PyContextVar_Type)) {
        PyErr_SetString(PyExc_TypeError, "configure_host: CURRENT must be a ContextVar");
        return NULL;
    }
    for (int i = 0; i < N_PROC_SLOTS; i++) {
        if (slot_offset(process_type, proc_slots[i], &proc_off[i]) < 0)
            return NULL;
    }
    /* Pid._proc and Scheduler.current: read by configure(), which comes first */
    if (slot_offset(pid_type, "_node", &off_pid_node) < 0
        || slot_offset(pid_type, "id", &off_pid_id) < 0)
        return NULL;
    KEEP(HostPid, (PyTypeObject *)pid_type);
    KEEP(HostProcess, (PyTypeObject *)process_type);
    KEEP(HostScheduler, (PyTypeObject *)scheduler_type);
    KEEP(exit_event, exits);
    KEEP(spawn_event, spawns);
    KEEP(current_var, var);
    KEEP(current_task, task_of);
    KEEP(py_hosted_slow, slow);
    KEEP(py_leave_block, leave);
    KEEP(py_spawned, spawned);
    Py_RETURN_NONE;
}

/* An Event's handlers list is not empty: 1, 0, or -1 on an error */
static int
hooked(PyObject *event)
{
    PyObject *handlers = PyObject_GetAttr(event, s_handlers);
    if (handlers == NULL)
        return -1;
    int on = PyObject_IsTrue(handlers);
    Py_DECREF(handlers);
    return on;
}

typedef struct {
    PyObject_HEAD
    PyObject *runtime;
    PyObject *procs;   /* runtime._procs */
    PyObject *ids;     /* runtime._ids, the pid counter */
    PyObject *node;    /* runtime.node_id */
    PyObject *hosted;  /* runtime._hosted: task -> the process it hosts */
    PyObject *loop;    /* runtime._loop */
    Py_ssize_t max_processes;
    Py_ssize_t spawned, exited;
    char open;         /* the runtime is running or stopping: it may make processes */
} HostObject;

static PyTypeObject HostType;

static int
host_init(HostObject *self, PyObject *args, PyObject *kwargs)
{
    PyObject *runtime, *procs, *ids, *node, *hosted, *loop;
    Py_ssize_t most;
    static char *keywords[] = {"runtime", "procs", "ids", "node", "hosted", "loop",
                               "max_processes", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!OOO!On:Host", keywords, &runtime,
                                     &PyDict_Type, &procs, &ids, &node, &PyDict_Type, &hosted,
                                     &loop, &most))
        return -1;
    if (HostProcess == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Host: configure_host() was not called");
        return -1;
    }
    if (!PyIter_Check(ids)) {
        PyErr_SetString(PyExc_TypeError, "Host: ids must be an iterator of ints");
        return -1;
    }
    Py_INCREF(runtime); Py_XSETREF(self->runtime, runtime);
    Py_INCREF(procs); Py_XSETREF(self->procs, procs);
    Py_INCREF(ids); Py_XSETREF(self->ids, ids);
    Py_INCREF(node); Py_XSETREF(self->node, node);
    Py_INCREF(hosted); Py_XSETREF(self->hosted, hosted);
    Py_INCREF(loop); Py_XSETREF(self->loop, loop);
    self->max_processes = most;
    self->open = 1;
    return 0;
}

static int
host_traverse(HostObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->runtime);
    Py_VISIT(self->procs);
    Py_VISIT(self->ids);
    Py_VISIT(self->node);
    Py_VISIT(self->hosted);
    Py_VISIT(self->loop);
    return 0;
}

static int
host_clear(HostObject *self)
{
    Py_CLEAR(self->runtime);
    Py_CLEAR(self->procs);
    Py_CLEAR(self->ids);
    Py_CLEAR(self->node);
    Py_CLEAR(self->hosted);
    Py_CLEAR(self->loop);
    return 0;
}

static void
host_dealloc(HostObject *self)
{
    PyObject_GC_UnTrack(self);
    host_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define SET_SLOT(obj, off, value) do { PyObject *v_ = (value); Py_INCREF(v_); \
    SLOT(obj, off) = v_; } while (0)

/* A new process record hosted by task (a new reference), Py_None (a new reference) for a case
   the Python path must take, NULL on an error */
static PyObject *
host_make(HostObject *self, PyObject *parent, PyObject *task)
{
    if (!self->open || self->procs == NULL
        || PyDict_GET_SIZE(self->procs) >= self->max_processes)
        Py_RETURN_NONE;  /* the Python path says why it cannot */
    PyObject *id = PyIter_Next(self->ids);
    if (id == NULL) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "the runtime's pid counter ended");
        return NULL;
    }
    PyObject *pid = HostPid->tp_alloc(HostPid, 0);
    PyObject *proc = pid ? HostProcess->tp_alloc(HostProcess, 0) : NULL;
    if (proc == NULL) {
        Py_XDECREF(pid);
        Py_DECREF(id);
        return NULL;
    }
    SET_SLOT(pid, off_pid_node, self->node);
    SLOT(pid, off_pid_id) = id;  /* the reference taken above */
    SET_SLOT(pid, off_pid_proc, proc);
    /* Process.__init__(runtime, pid, None, None), then what _new_process and AsProcess set */
    SET_SLOT(proc, proc_off[P_PID], pid);
    SET_SLOT(proc, proc_off[P_RUNTIME], self->runtime);
    SET_SLOT(proc, proc_off[P_ACTOR], Py_None);
    SET_SLOT(proc, proc_off[P_INITIAL], Py_None);
    SET_SLOT(proc, proc_off[P_MAILBOX], Py_None);
    SET_SLOT(proc, proc_off[P_TASK], task);
    SET_SLOT(proc, proc_off[P_WAITER], Py_None);
    SET_SLOT(proc, proc_off[P_CONTEXT], Py_None);
    SET_SLOT(proc, proc_off[P_SCHEDULED], Py_False);
    SET_SLOT(proc, proc_off[P_BUSY], Py_False);
    SET_SLOT(proc, proc_off[P_TRAP_EXIT], Py_False);
    SET_SLOT(proc, proc_off[P_LINKS], Py_None);
    SET_SLOT(proc, proc_off[P_MONITORS], Py_None);
    SET_SLOT(proc, proc_off[P_WATCHERS], Py_None);
    SET_SLOT(proc, proc_off[P_NAME], Py_None);
    SET_SLOT(proc, proc_off[P_HANDLED], int_zero);
    SET_SLOT(proc, proc_off[P_PARENT],
             parent == Py_None ? Py_None : SLOT(parent, proc_off[P_PID]));
    SET_SLOT(proc, proc_off[P_TIMERS], Py_None);
    SET_SLOT(proc, proc_off[P_EXIT_REASON], Py_None);
    Py_DECREF(pid);
    if (PyDict_SetItem(self->procs, id, proc) < 0) {
        Py_SETREF(SLOT(pid, off_pid_proc), Py_NewRef(Py_None));  /* never alive */
        Py_DECREF(proc);
        return NULL;
    }
    self->spawned++;
    return proc;
}

/* End proc "normal" from inside with nobody to tell: 1; 0 having changed nothing (the Python
   path takes it); -1 on an error */
static int
host_end(HostObject *self, PyObject *proc)
{
    if (Py_TYPE(proc) != HostProcess || self->procs == NULL)
        return 0;
    PyObject *pid = SLOT(proc, proc_off[P_PID]);
    if (pid == NULL || Py_TYPE(pid) != HostPid || SLOT(pid, off_pid_proc) != proc)
        return 0;  /* already ended: the Python path knows what that means */
    static const int nobody[] = {P_NAME, P_TIMERS, P_WAITER, P_LINKS, P_WATCHERS, P_MONITORS,
                                 P_ACTOR};
    for (size_t i = 0; i < sizeof(nobody) / sizeof(nobody[0]); i++) {
        if (SLOT(proc, proc_off[nobody[i]]) != Py_None)
            return 0;
    }
    int on = hooked(exit_event);
    if (on != 0)
        return on < 0 ? -1 : 0;
    /* _exit_process(proc, "normal", from_inside=True), nobody to tell */
    int failed = PyDict_DelItem(self->procs, SLOT(pid, off_pid_id));
    SLOT(pid, off_pid_proc) = Py_NewRef(Py_None);
    Py_XSETREF(SLOT(proc, proc_off[P_EXIT_REASON]), Py_NewRef(s_normal));
    self->exited++;
    static const int dropped[] = {P_MAILBOX, P_ACTOR, P_CONTEXT, P_TASK};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        Py_XSETREF(SLOT(proc, proc_off[dropped[i]]), Py_NewRef(Py_None));
    Py_DECREF(proc);  /* the pid's reference to it */
    return failed < 0 ? -1 : 1;
}

static PyObject *
host_make_py(HostObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "make(parent, task)");
        return NULL;
    }
    if (args[0] != Py_None && Py_TYPE(args[0]) != HostProcess) {
        PyErr_SetString(PyExc_TypeError, "make(parent, task): parent is a Process or None");
        return NULL;
    }
    return host_make(self, args[0], args[1]);
}

static PyObject *
host_end_py(HostObject *self, PyObject *proc)
{
    int done = host_end(self, proc);
    if (done < 0)
        return NULL;
    return PyBool_FromLong(done);
}

static PyObject *block_new_for(HostObject *host);

static PyObject *
host_block(HostObject *self, PyObject *unused)
{
    return block_new_for(self);
}

static PyMethodDef host_methods[] = {
    {"make", (PyCFunction)(void (*)(void))host_make_py, METH_FASTCALL,
     "make(parent, task)\n--\n\nA new process record hosted by task, as "
     "Runtime._new_process and AsProcess make it; None for any case the Python path must "
     "take."},
    {"end", (PyCFunction)host_end_py, METH_O,
     "end(proc)\n--\n\nEnd a hosted process \"normal\" with nobody to tell, as "
     "_exit_process does; False (nothing done) for any other case."},
    {"block", (PyCFunction)host_block, METH_NOARGS,
     "block()\n--\n\nA plain `with` block run as a process: AsProcess(runtime, None, False), "
     "in C."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef host_members[] = {
    {"spawned", T_PYSSIZET, offsetof(HostObject, spawned), READONLY,
     "processes this host made"},
    {"exited", T_PYSSIZET, offsetof(HostObject, exited), READONLY,
     "processes this host ended"},
    {"max_processes", T_PYSSIZET, offsetof(HostObject, max_processes), 0,
     "the runtime's process limit"},
    {"open", T_BOOL, offsetof(HostObject, open), 0,
     "the runtime may make processes (it is running or stopping)"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject HostType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beamish._runtime._speedups.Host",
    .tp_basicsize = sizeof(HostObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Host(runtime, procs, ids, node, hosted, loop, max_processes)\n--\n\n"
              "What a runtime's hosted processes are made and ended with, in C.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)host_init,
    .tp_traverse = (traverseproc)host_traverse,
    .tp_clear = (inquiry)host_clear,
    .tp_dealloc = (destructor)host_dealloc,
    .tp_methods = host_methods,
    .tp_members = host_members,
};

typedef struct {
    PyObject_HEAD
    HostObject *host;
    PyObject *proc;   /* the block's process, while it runs */
    PyObject *task;   /* the task it runs in */
    PyObject *outer;  /* the process that task hosted before (a block in a block), or NULL */
    PyObject *token;  /* CURRENT's token, to reset it */
} BlockObject;

static PyTypeObject BlockType;

static PyObject *
block_new_for(HostObject *host)
{
    BlockObject *self = PyObject_GC_New(BlockObject, &BlockType);
    if (self == NULL)
        return NULL;
    Py_INCREF(host);
    self->host = host;
    self->proc = self->task = self->outer = self->token = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

static int
block_traverse(BlockObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->host);
    Py_VISIT(self->proc);
    Py_VISIT(self->task);
    Py_VISIT(self->outer);
    Py_VISIT(self->token);
    return 0;
}

static int
block_clear(BlockObject *self)
{
    Py_CLEAR(self->host);
    Py_CLEAR(self->proc);
    Py_CLEAR(self->task);
    Py_CLEAR(self->outer);
    Py_CLEAR(self->token);
    return 0;
}

static void
block_dealloc(BlockObject *self)
{
    PyObject_GC_UnTrack(self);
    block_clear(self);
    PyObject_GC_Del(self);
}

/* context.current_process(): the process CURRENT holds, a Scheduler's current one, or None
   (a borrowed reference) */
static PyObject *
current_process(PyObject *value)
{
    if (value != NULL) {
        if (Py_TYPE(value) == HostProcess)
            return value;
        if (Py_TYPE(value) == HostScheduler) {
            PyObject *running = SLOT(value, off_current);
            return running != NULL ? running : Py_None;
        }
    }
    return Py_None;
}

static PyObject *
block_enter(BlockObject *self, PyObject *unused)
{
    HostObject *host = self->host;
    if (self->token != NULL || host == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a process block is entered once");
        return NULL;
    }
    /* the runtime's loop given: asyncio's lookup of the running loop makes a getpid()
       system call each time (its fork check) */
    PyObject *task = PyObject_CallOneArg(current_task, host->loop);
    if (task == NULL)
        return NULL;
    if (task == Py_None) {
        Py_DECREF(task);
        PyErr_SetString(PyExc_RuntimeError, "as_process() must be used inside an asyncio task "
                                            "on the runtime's event loop");
        return NULL;
    }
    PyObject *value;
    if (PyContextVar_Get(current_var, NULL, &value) < 0) {
        Py_DECREF(task);
        return NULL;
    }
    PyObject *parent = current_process(value);  /* borrowed from value */
    PyObject *proc = host_make(host, parent, task);
    if (proc == Py_None) {
        Py_DECREF(proc);
        PyObject *args[3] = {host->runtime, parent, task};
        proc = PyObject_Vectorcall(py_hosted_slow, args, 3, NULL);
    }
    Py_XDECREF(value);
    if (proc == NULL) {
        Py_DECREF(task);
        return NULL;
    }
    int on = hooked(spawn_event);  /* told before the block runs, as _new_process tells */
    if (on > 0) {
        PyObject *told = PyObject_CallOneArg(py_spawned, SLOT(proc, proc_off[P_PID]));
        if (told == NULL)
            goto undo;
        Py_DECREF(told);
    }
    else if (on < 0)
        goto undo;
    PyObject *token = PyContextVar_Set(current_var, proc);
    if (token == NULL)
        goto undo;
    PyObject *outer = PyDict_GetItemWithError(host->hosted, task);
    if (outer == NULL && PyErr_Occurred())
        goto undo_token;
    Py_XINCREF(outer);
    if (PyDict_SetItem(host->hosted, task, proc) < 0) {
        Py_XDECREF(outer);
        goto undo_token;
    }
    self->proc = proc;
    self->task = task;
    self->outer = outer;
    self->token = token;
    return Py_NewRef(SLOT(proc, proc_off[P_PID]));

undo_token:
    {
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        if (PyContextVar_Reset(current_var, token) < 0)
            PyErr_Clear();
        Py_DECREF(token);
        PyErr_Restore(type, exc, tb);
    }
undo:
    {  /* the process never ran: end it as the Python path would, keeping the first error */
        PyObject *type, *exc, *tb;
        PyErr_Fetch(&type, &exc, &tb);
        PyObject *args[3] = {host->runtime, proc, Py_None};
        PyObject *left = PyObject_Vectorcall(py_leave_block, args, 3, NULL);
        if (left == NULL)
            PyErr_Clear();
        Py_XDECREF(left);
        PyErr_Restore(type, exc, tb);
    }
    Py_DECREF(proc);
    Py_DECREF(task);
    return NULL;
}

static PyObject *
block_exit(BlockObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__(exc_type, exc, traceback)");
        return NULL;
    }
    HostObject *host = self->host;
    PyObject *proc = self->proc, *task = self->task, *outer = self->outer,
        *token = self->token;
    if (token == NULL || host == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a process block left without being entered");
        return NULL;
    }
    self->proc = self->task = self->outer = self->token = NULL;  /* the references are ours */
    PyObject *result = NULL;
    PyObject *exc = args[1];
    if (PyContextVar_Reset(current_var, token) < 0)
        goto done;
    if (outer != NULL) {
        if (PyDict_SetItem(host->hosted, task, outer) < 0)
            goto done;
    }
    else if (PyDict_DelItem(host->hosted, task) < 0) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            goto done;
        PyErr_Clear();
    }
    if (exc == Py_None) {
        int ended = host_end(host, proc);
        if (ended < 0)
            goto done;
        if (ended) {
            result = Py_NewRef(Py_False);
            goto done;
        }
    }
    PyObject *call[3] = {host->runtime, proc, exc};
    result = PyObject_Vectorcall(py_leave_block, call, 3, NULL);
done:
    Py_DECREF(proc);
    Py_DECREF(task);
    Py_XDECREF(outer);
    Py_DECREF(token);
    return result;
}

static PyMethodDef block_methods[] = {
    {"__enter__", (PyCFunction)block_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)(void (*)(void))block_exit, METH_FASTCALL, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beamish._runtime._speedups.Block",
    .tp_basicsize = sizeof(BlockObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A plain `with` block run as a process (Host.block()).",
    .tp_traverse = (traverseproc)block_traverse,
    .tp_clear = (inquiry)block_clear,
    .tp_dealloc = (destructor)block_dealloc,
    .tp_methods = block_methods,
};

static PyMethodDef methods[] = {
    {"send", (PyCFunction)(void (*)(void))send, METH_FASTCALL,
     "send(dest, message)\n--\n\nSend message to a pid or a registered name; never blocks "
     "(beamish's send, in C)."},
    {"dispatch", dispatch, METH_O,
     "dispatch(scheduler)\n--\n\nOne tick's work, as scheduler._dispatch_py does it; "
     "returns how many messages were handled."},
    {"configure_host", configure_host, METH_VARARGS,
     "configure_host(Pid, Process, Scheduler, exit_event, spawn_event, CURRENT, current_task, "
     "hosted_slow, leave_block, emit_spawn)\n--\n\nRead the slot layouts and the Python "
     "helpers Host and Block use."},
    {"configure", configure, METH_VARARGS,
     "configure(Pid, Process, Scheduler, ATOMIC, py_send, isolate, tick, INIT, HIBERNATE, "
     "ProcessExit, "
     "stopped, crashed, start_async)\n--\n\n"
     "Read the slot layouts and the Python fallbacks (done once, at import)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "beamish._runtime._speedups",
    "The send hot path and the tick's dispatch, in C (optional: the pure-Python ones are "
    "the reference).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    if (PyType_Ready(&HostType) < 0 || PyType_Ready(&BlockType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Host", (PyObject *)&HostType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
