/* beamish.web._cjoined: _joined.py's EndOfTurn and JoinedWrites, in C.
 *
 * A response's head is held until its body follows and both leave in one transport.write
 * (_joined.py says why and how). Every HTTP response goes through these two objects: a
 * write for its head, one for its body, a note of the held head and its flush at the end of
 * the loop's turn. As Python methods those are five interpreted calls a request; here they
 * are C calls. _joined.py is the reference: this file does what it does, line by line, and
 * the tests run both (BEAMISH_PURE_PYTHON=1 selects the Python ones).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>

static PyObject *str_write = NULL;
static PyObject *str_is_closing = NULL;
static PyObject *str_close = NULL;
static PyObject *str_call_soon = NULL;

typedef struct {
    PyObject_HEAD
    PyObject *held;       /* list of JoinedWrites whose head is held */
    PyObject *run;        /* the bound _run, made once */
    int scheduled;
} EndOfTurn;

typedef struct {
    PyObject_HEAD
    PyObject *transport;
    PyObject *loop;
    EndOfTurn *end_of_turn;
    PyObject *held;       /* the held head (bytes), or NULL */
    PyObject *line;       /* a header line for the next final head (bytes), or NULL */
    char expect_head;     /* the cycle's first write is a head */
} JoinedWrites;

static PyTypeObject EndOfTurnType;
static PyTypeObject JoinedWritesType;

/* -- JoinedWrites ------------------------------------------------------------------------ */

static int
joined_flush(JoinedWrites *self)
{
    PyObject *held = self->held;
    if (held == NULL)
        return 0;
    self->held = NULL;
    PyObject *closing = PyObject_CallMethodNoArgs(self->transport, str_is_closing);
    if (closing == NULL) {
        Py_DECREF(held);
        return -1;
    }
    int is_closing = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (is_closing < 0) {
        Py_DECREF(held);
        return -1;
    }
    if (!is_closing) {
        PyObject *done = PyObject_CallMethodOneArg(self->transport, str_write, held);
        Py_DECREF(held);
        if (done == NULL)
            return -1;
        Py_DECREF(done);
        return 0;
    }
    Py_DECREF(held);
    return 0;
}

static int
end_of_turn_note(EndOfTurn *self, JoinedWrites *joined, PyObject *loop)
{
    if (PyList_Append(self->held, (PyObject *)joined) < 0)
        return -1;
    if (!self->scheduled) {
        PyObject *handle = PyObject_CallMethodOneArg(loop, str_call_soon, self->run);
        if (handle == NULL)
            return -1;
        Py_DECREF(handle);
        self->scheduled = 1;
    }
    return 0;
}

static PyObject *
joined_write(JoinedWrites *self, PyObject *data)
{
    PyObject *held = self->held;
    if (held != NULL) {
        self->held = NULL;
        PyObject *both = PyNumber_Add(held, data);
        Py_DECREF(held);
        if (both == NULL)
            return NULL;
        PyObject *done = PyObject_CallMethodOneArg(self->transport, str_write, both);
        Py_DECREF(both);
        return done;
    }
    if (self->expect_head) {
        self->expect_head = 0;
        Py_INCREF(data);
        self->held = data;
        if (end_of_turn_note(self->end_of_turn, self, self->loop) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    return PyObject_CallMethodOneArg(self->transport, str_write, data);
}

/* A final response head (HTTP/1.1, not 1xx, ending in its blank line)? */
static int
is_final_head(PyObject *data)
{
    if (!PyBytes_CheckExact(data))
        return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    const char *s = PyBytes_AS_STRING(data);
    return n >= 13 && memcmp(s, "HTTP/1.1 ", 9) == 0 && s[9] != '1'
           && memcmp(s + n - 4, "\r\n\r\n", 4) == 0;
}

static PyObject *
JoinedWrites_write(JoinedWrites *self, PyObject *data)
{
    if (self->line == NULL || !is_final_head(data))
        return joined_write(self, data);
    /* data[:-2] + line + b"\r\n" */
    Py_ssize_t n = PyBytes_GET_SIZE(data), m = PyBytes_GET_SIZE(self->line);
    PyObject *spliced = PyBytes_FromStringAndSize(NULL, n + m);
    if (spliced == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(spliced);
    memcpy(out, PyBytes_AS_STRING(data), n - 2);
    memcpy(out + n - 2, PyBytes_AS_STRING(self->line), m);
    memcpy(out + n - 2 + m, "\r\n", 2);
    Py_CLEAR(self->line);
    PyObject *done = joined_write(self, spliced);
    Py_DECREF(spliced);
    return done;
}

static PyObject *
JoinedWrites_head_line(JoinedWrites *self, PyObject *line)
{
    if (!PyBytes_Check(line)) {
        PyErr_Format(PyExc_TypeError, "head_line takes bytes, got %R", line);
        return NULL;
    }
    Py_INCREF(line);
    Py_XSETREF(self->line, line);
    Py_RETURN_NONE;
}

static PyObject *
JoinedWrites_flush(JoinedWrites *self, PyObject *Py_UNUSED(ignored))
{
    if (joined_flush(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
JoinedWrites_is_closing(JoinedWrites *self, PyObject *Py_UNUSED(ignored))
{
    return PyObject_CallMethodNoArgs(self->transport, str_is_closing);
}

static PyObject *
JoinedWrites_close(JoinedWrites *self, PyObject *Py_UNUSED(ignored))
{
    if (joined_flush(self) < 0)
        return NULL;
    return PyObject_CallMethodNoArgs(self->transport, str_close);
}

static PyObject *
JoinedWrites_getattro(JoinedWrites *self, PyObject *name)
{
    PyObject *found = PyObject_GenericGetAttr((PyObject *)self, name);
    if (found != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError))
        return found;
    PyErr_Clear();  /* anything else a cycle might ask of it is the transport's */
    return PyObject_GetAttr(self->transport, name);
}

static int
JoinedWrites_init(JoinedWrites *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"transport", "loop", "end_of_turn", NULL};
    PyObject *transport, *loop, *end_of_turn;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!:JoinedWrites", keywords, &transport,
                                     &loop, &EndOfTurnType, &end_of_turn))
        return -1;
    Py_INCREF(transport);
    Py_XSETREF(self->transport, transport);
    Py_INCREF(loop);
    Py_XSETREF(self->loop, loop);
    Py_INCREF(end_of_turn);
    Py_XSETREF(self->end_of_turn, (EndOfTurn *)end_of_turn);
    Py_CLEAR(self->held);
    Py_CLEAR(self->line);
    self->expect_head = 0;
    return 0;
}

static int
JoinedWrites_traverse(JoinedWrites *self, visitproc visit, void *arg)
{
    Py_VISIT(self->transport);
    Py_VISIT(self->loop);
    Py_VISIT(self->end_of_turn);
    Py_VISIT(self->held);
    Py_VISIT(self->line);
    return 0;
}

static int
JoinedWrites_clear(JoinedWrites *self)
{
    Py_CLEAR(self->line);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->end_of_turn);
    Py_CLEAR(self->held);
    return 0;
}

static void
JoinedWrites_dealloc(JoinedWrites *self)
{
    PyObject_GC_UnTrack(self);
    JoinedWrites_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
JoinedWrites_get_transport(JoinedWrites *self, void *Py_UNUSED(closure))
{
    if (self->transport == NULL)
        Py_RETURN_NONE;
    Py_INCREF(self->transport);
    return self->transport;
}

static int
JoinedWrites_set_transport(JoinedWrites *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "transport cannot be deleted");
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(self->transport, value);
    return 0;
}

static PyMethodDef JoinedWrites_methods[] = {
    {"write", (PyCFunction)JoinedWrites_write, METH_O,
     "write(data)\n--\n\nHold a cycle's head; send a held head with what follows it."},
    {"head_line", (PyCFunction)JoinedWrites_head_line, METH_O,
     "head_line(line)\n--\n\nSplice line (name: value\\r\\n, valid) into the next final "
     "response head."},
    {"flush", (PyCFunction)JoinedWrites_flush, METH_NOARGS,
     "flush()\n--\n\nSend a held head now (before the protocol writes on the transport "
     "itself)."},
    {"is_closing", (PyCFunction)JoinedWrites_is_closing, METH_NOARGS,
     "is_closing()\n--\n\nThe transport's is_closing()."},
    {"close", (PyCFunction)JoinedWrites_close, METH_NOARGS,
     "close()\n--\n\nSend a held head, then close the transport."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef JoinedWrites_members[] = {
    {"loop", T_OBJECT, offsetof(JoinedWrites, loop), READONLY, "The event loop."},
    {"expect_head", T_BOOL, offsetof(JoinedWrites, expect_head), 0,
     "Set when a cycle starts: its first write is the head."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef JoinedWrites_getset[] = {
    {"transport", (getter)JoinedWrites_get_transport, (setter)JoinedWrites_set_transport,
     "The connection's transport.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject JoinedWritesType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beamish.web._cjoined.JoinedWrites",
    .tp_doc = PyDoc_STR("JoinedWrites(transport, loop, end_of_turn)\n--\n\n"
                        "The transport a request cycle writes through (_joined.py)."),
    .tp_basicsize = sizeof(JoinedWrites),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)JoinedWrites_init,
    .tp_dealloc = (destructor)JoinedWrites_dealloc,
    .tp_traverse = (traverseproc)JoinedWrites_traverse,
    .tp_clear = (inquiry)JoinedWrites_clear,
    .tp_getattro = (getattrofunc)JoinedWrites_getattro,
    .tp_methods = JoinedWrites_methods,
    .tp_members = JoinedWrites_members,
    .tp_getset = JoinedWrites_getset,
};

/* -- EndOfTurn --------------------------------------------------------------------------- */

static PyObject *
EndOfTurn_run(EndOfTurn *self, PyObject *Py_UNUSED(ignored))
{
    self->scheduled = 0;
    PyObject *held = self->held;
    self->held = PyList_New(0);
    if (self->held == NULL) {
        self->held = held;
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(held);
    for (Py_ssize_t i = 0; i < n; i++) {
        /* most found their head already sent with its body */
        if (joined_flush((JoinedWrites *)PyList_GET_ITEM(held, i)) < 0) {
            Py_DECREF(held);
            return NULL;
        }
    }
    Py_DECREF(held);
    Py_RETURN_NONE;
}

static PyObject *
EndOfTurn_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_GET_SIZE(args) || (kwargs != NULL && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "EndOfTurn() takes no arguments");
        return NULL;
    }
    EndOfTurn *self = (EndOfTurn *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->held = PyList_New(0);
    self->run = self->held ? PyObject_GetAttrString((PyObject *)self, "_run") : NULL;
    if (self->run == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
EndOfTurn_traverse(EndOfTurn *self, visitproc visit, void *arg)
{
    Py_VISIT(self->held);
    Py_VISIT(self->run);
    return 0;
}

static int
EndOfTurn_clear(EndOfTurn *self)
{
    Py_CLEAR(self->held);
    Py_CLEAR(self->run);
    return 0;
}

static void
EndOfTurn_dealloc(EndOfTurn *self)
{
    PyObject_GC_UnTrack(self);
    EndOfTurn_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef EndOfTurn_methods[] = {
    {"_run", (PyCFunction)EndOfTurn_run, METH_NOARGS,
     "_run()\n--\n\nThe end of the turn: flush every noted JoinedWrites."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EndOfTurnType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "beamish.web._cjoined.EndOfTurn",
    .tp_doc = PyDoc_STR("EndOfTurn()\n--\n\n"
                        "The held heads of one server's connections, sent at the end of the "
                        "loop's turn (_joined.py)."),
    .tp_basicsize = sizeof(EndOfTurn),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_new = EndOfTurn_new,
    .tp_dealloc = (destructor)EndOfTurn_dealloc,
    .tp_traverse = (traverseproc)EndOfTurn_traverse,
    .tp_clear = (inquiry)EndOfTurn_clear,
    .tp_methods = EndOfTurn_methods,
};

/* -- the module ------------------------------------------------------------------------- */

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "beamish.web._cjoined",
    "_joined.py's EndOfTurn and JoinedWrites in C (optional: the Python ones are the "
    "reference).",
    -1, NULL,
};

PyMODINIT_FUNC
PyInit__cjoined(void)
{
    if (PyType_Ready(&EndOfTurnType) < 0 || PyType_Ready(&JoinedWritesType) < 0)
        return NULL;
    str_write = PyUnicode_InternFromString("write");
    str_is_closing = PyUnicode_InternFromString("is_closing");
    str_close = PyUnicode_InternFromString("close");
    str_call_soon = PyUnicode_InternFromString("call_soon");
    if (!str_write || !str_is_closing || !str_close || !str_call_soon)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    Py_INCREF(&EndOfTurnType);
    if (PyModule_AddObject(mod, "EndOfTurn", (PyObject *)&EndOfTurnType) < 0) {
        Py_DECREF(&EndOfTurnType);
        Py_DECREF(mod);
        return NULL;
    }
    Py_INCREF(&JoinedWritesType);
    if (PyModule_AddObject(mod, "JoinedWrites", (PyObject *)&JoinedWritesType) < 0) {
        Py_DECREF(&JoinedWritesType);
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
