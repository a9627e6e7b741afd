/* beamish._runtime._watchman: the long-schedule watchdog's thread, without the GIL.
 *
 * The watchdog (watchdog.py) must notice, from another thread, that the event loop has not
 * run its heartbeat for longer than the threshold. A Python thread cannot even look at a
 * clock without the GIL, and under load it cannot get the GIL cheaply: the loop thread lets
 * it go at every turn of the loop, each time waking the waiting thread, which then loses
 * the race to take it back (bench/http_stack.py --watchdog python against --watchdog c;
 * the figures are in docs/benchmarks.md).
 *
 * A Watchman is that thread in C. The loop's heartbeat calls beat(), which stores the time
 * in an atomic; the thread wakes every `interval` seconds and compares it with the clock,
 * holding nothing. Only when the heartbeat is late by more than `threshold` (a step is
 * holding the loop right now) does it take the GIL, once for that heartbeat, and call
 * on_late(beat) so that Python code can read the loop thread's stack.
 *
 * The clock is CLOCK_MONOTONIC, the clock of Python's time.monotonic() on Linux and macOS.
 * POSIX threads only: where this file cannot be built, watchdog.py runs its Python thread.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    PyObject *on_late;         /* on_late(beat: float), called with the GIL */
    long long interval_ns;     /* how often the thread looks */
    long long late_ns;         /* how late the heartbeat may be before on_late is called */
    _Atomic long long beat;    /* the heartbeat's last time, in ns of CLOCK_MONOTONIC */
    _Atomic int stopping;
    int started;               /* the thread was created and is not joined yet */
    pid_t owner;               /* the OS process that created it (a fork's child has none) */
    pthread_t thread;
    pthread_mutex_t mutex;     /* with cond: the thread's sleep, cut short by stop() */
    pthread_cond_t cond;
} Watchman;

static long long
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
call_on_late(Watchman *self, long long beat)
{
    PyGILState_STATE gil = PyGILState_Ensure();
    if (!atomic_load(&self->stopping)) {
        PyObject *result = PyObject_CallFunction(self->on_late, "d", (double)beat / 1e9);
        if (result == NULL)
            PyErr_WriteUnraisable(self->on_late);
        Py_XDECREF(result);
    }
    PyGILState_Release(gil);
}

static void *
watch(void *arg)
{
    Watchman *self = (Watchman *)arg;
    long long reported = -1;  /* the heartbeat on_late was last called for */
    pthread_mutex_lock(&self->mutex);
    while (!atomic_load(&self->stopping)) {
        long long wake = now_ns() + self->interval_ns;
        struct timespec until = {(time_t)(wake / 1000000000LL), (long)(wake % 1000000000LL)};
        while (!atomic_load(&self->stopping)
               && pthread_cond_timedwait(&self->cond, &self->mutex, &until) != ETIMEDOUT) {
        }
        if (atomic_load(&self->stopping))
            break;
        long long beat = atomic_load(&self->beat);
        if (now_ns() - beat > self->late_ns && beat != reported) {
            reported = beat;
            pthread_mutex_unlock(&self->mutex);  /* stop() may run while this waits */
            call_on_late(self, beat);
            pthread_mutex_lock(&self->mutex);
        }
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

static int
Watchman_init(Watchman *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"interval", "threshold", "on_late", NULL};
    double interval, threshold;
    PyObject *on_late;
    if (self->started) {
        PyErr_SetString(PyExc_RuntimeError, "a running Watchman cannot be initialised again");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ddO:Watchman", keywords, &interval,
                                     &threshold, &on_late))
        return -1;
    if (!(interval > 0) || !(threshold > 0)) {
        PyErr_Format(PyExc_ValueError,
                     "interval and threshold must be > 0 seconds, got %R and %R",
                     PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1));
        return -1;
    }
    if (!PyCallable_Check(on_late)) {
        PyErr_Format(PyExc_TypeError, "on_late must be callable, got %R", on_late);
        return -1;
    }
    Py_INCREF(on_late);
    Py_XSETREF(self->on_late, on_late);
    self->interval_ns = (long long)(interval * 1e9);
    self->late_ns = (long long)((threshold + interval) * 1e9);
    atomic_store(&self->beat, now_ns());
    return 0;
}

static PyObject *
Watchman_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    Watchman *self = (Watchman *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    pthread_condattr_t attr;
    if (pthread_mutex_init(&self->mutex, NULL) != 0 || pthread_condattr_init(&attr) != 0
        || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0
        || pthread_cond_init(&self->cond, &attr) != 0) {
        Py_DECREF(self);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    pthread_condattr_destroy(&attr);
    atomic_store(&self->stopping, 0);
    atomic_store(&self->beat, now_ns());
    return (PyObject *)self;
}

static PyObject *
Watchman_start(Watchman *self, PyObject *Py_UNUSED(ignored))
{
    if (self->on_late == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Watchman.__init__ was not called");
        return NULL;
    }
    if (self->started || atomic_load(&self->stopping)) {
        PyErr_SetString(PyExc_RuntimeError, "a Watchman starts once");
        return NULL;
    }
    atomic_store(&self->beat, now_ns());
    int failed = pthread_create(&self->thread, NULL, watch, self);
    if (failed) {
        errno = failed;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->started = 1;
    self->owner = getpid();
    Py_RETURN_NONE;
}

static void
stop_and_join(Watchman *self)
{
    pthread_mutex_lock(&self->mutex);
    atomic_store(&self->stopping, 1);
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
    if (self->started && self->owner != getpid()) {
        self->started = 0;  /* a forked child: the thread stayed in the parent */
        return;
    }
    if (self->started) {
        self->started = 0;
        Py_BEGIN_ALLOW_THREADS  /* the thread may be waiting for the GIL to call on_late */
        pthread_join(self->thread, NULL);
        Py_END_ALLOW_THREADS
    }
}

static PyObject *
Watchman_stop(Watchman *self, PyObject *Py_UNUSED(ignored))
{
    stop_and_join(self);
    Py_RETURN_NONE;
}

static PyObject *
Watchman_beat(Watchman *self, PyObject *Py_UNUSED(ignored))
{
    atomic_store(&self->beat, now_ns());
    Py_RETURN_NONE;
}

static PyObject *
Watchman_last_beat(Watchman *self, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble((double)atomic_load(&self->beat) / 1e9);
}

static PyObject *
Watchman_running(Watchman *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->started && !atomic_load(&self->stopping));
}

static int
Watchman_traverse(Watchman *self, visitproc visit, void *arg)
{
    Py_VISIT(self->on_late);
    return 0;
}

static int
Watchman_clear(Watchman *self)
{
    /* a running thread may call on_late: the reference is kept until it is joined */
    if (!self->started)
        Py_CLEAR(self->on_late);
    return 0;
}

static void
Watchman_dealloc(Watchman *self)
{
    PyObject_GC_UnTrack(self);
    stop_and_join(self);
    Py_CLEAR(self->on_late);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->mutex);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Watchman_methods[] = {
    {"start", (PyCFunction)Watchman_start, METH_NOARGS,
     "start()\n--\n\nStart the thread (once)."},
    {"stop", (PyCFunction)Watchman_stop, METH_NOARGS,
     "stop()\n--\n\nStop the thread and wait for it to end; a later call does nothing."},
    {"beat", (PyCFunction)Watchman_beat, METH_NOARGS,
     "beat()\n--\n\nRecord that the loop ran now (the heartbeat calls this)."},
    {"last_beat", (PyCFunction)Watchman_last_beat, METH_NOARGS,
     "last_beat()\n--\n\nThe time of the last beat, on time.monotonic()'s clock."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Watchman_getset[] = {
    {"running", (getter)Watchman_running, NULL, "The thread was started and not stopped.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject WatchmanType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beamish._runtime._watchman.Watchman",
    .tp_doc = PyDoc_STR(
        "Watchman(interval, threshold, on_late)\n--\n\n"
        "A thread that wakes every `interval` seconds without taking the GIL and calls "
        "on_late(beat) (with the GIL, once per beat) when the last beat() is older than "
        "`threshold` + `interval`."),
    .tp_basicsize = sizeof(Watchman),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = Watchman_new,
    .tp_init = (initproc)Watchman_init,
    .tp_dealloc = (destructor)Watchman_dealloc,
    .tp_traverse = (traverseproc)Watchman_traverse,
    .tp_clear = (inquiry)Watchman_clear,
    .tp_methods = Watchman_methods,
    .tp_getset = Watchman_getset,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "beamish._runtime._watchman",
    "The long-schedule watchdog's thread, in C: it watches the loop's heartbeat without the "
    "GIL (optional: watchdog.py has a Python thread where this cannot be built).",
    -1, NULL,
};

PyMODINIT_FUNC
PyInit__watchman(void)
{
    if (PyType_Ready(&WatchmanType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&WatchmanType);
    if (PyModule_AddObject(mod, "Watchman", (PyObject *)&WatchmanType) < 0) {
        Py_DECREF(&WatchmanType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
