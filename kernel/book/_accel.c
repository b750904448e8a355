/*
 * Compiled versions of the two hottest loops of the market-data path.
 *
 * fixed_levels: a depth frame's [["price", "size"], ...] lists to (price, size)
 *   int tuples at fixed precision. Only plain ASCII decimals that fit in 64 bits
 *   are converted here; for anything else (a sign, another shape, too many
 *   digits, a non-zero digit past the precision) it returns None and the caller
 *   converts the whole list in Python, which also raises the exact errors.
 * heap_top: the `depth` smallest live keys of a lazily-deleted heap, as
 *   kernel.book.l2._heap_top computes them.
 *
 * kernel/book/accel.py chooses between these and the pure-Python reference;
 * tests/book/test_accel.py checks that both give identical results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>

#define MAX_PRECISION 18

static const long long POWERS_OF_TEN[MAX_PRECISION + 1] = {
    1LL,
    10LL,
    100LL,
    1000LL,
    10000LL,
    100000LL,
    1000000LL,
    10000000LL,
    100000000LL,
    1000000000LL,
    10000000000LL,
    100000000000LL,
    1000000000000LL,
    10000000000000LL,
    100000000000000LL,
    1000000000000000LL,
    10000000000000000LL,
    100000000000000000LL,
    1000000000000000000LL,
};

/*
 * Set *out to `text` scaled by 10**precision and return 1 when `text` is
 * unsigned ASCII digits with an optional fraction, its value fits in a signed
 * 64-bit integer and no non-zero digit lies past the precision. Return 0 when
 * the Python converter has to decide.
 */
static int
plain_to_fixed(PyObject *text, int precision, long long *out)
{
    if (!PyUnicode_CheckExact(text) || !PyUnicode_IS_ASCII(text)) {
        return 0;
    }
    const Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    const char *chars = (const char *)PyUnicode_1BYTE_DATA(text);
    const long long limit = (LLONG_MAX - 9) / 10;
    long long value = 0;
    Py_ssize_t at = 0;

    while (at < length && chars[at] >= '0' && chars[at] <= '9') {
        if (value > limit) {
            return 0;
        }
        value = value * 10 + (chars[at] - '0');
        at++;
    }
    if (at == 0) {
        return 0; /* no digit before the point (or an empty string) */
    }
    int decimals = 0;
    if (at < length) {
        if (chars[at] != '.') {
            return 0;
        }
        at++;
        for (; at < length; at++) {
            const char digit = chars[at];
            if (digit < '0' || digit > '9') {
                return 0;
            }
            if (decimals < precision) {
                if (value > limit) {
                    return 0;
                }
                value = value * 10 + (digit - '0');
                decimals++;
            }
            else if (digit != '0') {
                return 0; /* more significant decimals than the precision */
            }
        }
    }
    const long long scale = POWERS_OF_TEN[precision - decimals];
    if (value > LLONG_MAX / scale) {
        return 0;
    }
    *out = value * scale;
    return 1;
}

static int
read_precision(PyObject *arg, int *precision)
{
    const long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (value < 0) {
        PyErr_SetString(PyExc_ValueError, "precision must be >= 0");
        return -1;
    }
    /* Larger precisions are valid but never fit the fast path: signal "not here". */
    *precision = value > MAX_PRECISION ? -1 : (int)value;
    return 0;
}

static PyObject *
fixed_levels(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "fixed_levels(raw, price_precision, size_precision)");
        return NULL;
    }
    PyObject *raw = args[0];
    int price_precision, size_precision;
    if (read_precision(args[1], &price_precision) < 0 ||
        read_precision(args[2], &size_precision) < 0) {
        return NULL;
    }
    if (!PyList_CheckExact(raw) || price_precision < 0 || size_precision < 0) {
        Py_RETURN_NONE;
    }
    const Py_ssize_t count = PyList_GET_SIZE(raw);
    PyObject *levels = PyList_New(count);
    if (levels == NULL) {
        return NULL;
    }
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *item = PyList_GET_ITEM(raw, index);
        long long price, size;
        if (!PyList_CheckExact(item) || PyList_GET_SIZE(item) != 2 ||
            !plain_to_fixed(PyList_GET_ITEM(item, 0), price_precision, &price) ||
            !plain_to_fixed(PyList_GET_ITEM(item, 1), size_precision, &size)) {
            Py_DECREF(levels);
            Py_RETURN_NONE;
        }
        PyObject *level = PyTuple_New(2);
        if (level == NULL) {
            Py_DECREF(levels);
            return NULL;
        }
        PyObject *price_int = PyLong_FromLongLong(price);
        PyObject *size_int = price_int == NULL ? NULL : PyLong_FromLongLong(size);
        if (size_int == NULL) {
            Py_XDECREF(price_int);
            Py_DECREF(level);
            Py_DECREF(levels);
            return NULL;
        }
        PyTuple_SET_ITEM(level, 0, price_int);
        PyTuple_SET_ITEM(level, 1, size_int);
        PyList_SET_ITEM(levels, index, level);
    }
    return levels;
}

/* The frontier of heap_top: a binary min-heap of positions in `heap`, ordered by key. */
typedef struct {
    Py_ssize_t *slots;
    Py_ssize_t count;
    Py_ssize_t capacity;
} Frontier;

/* Return 1 when heap[a] < heap[b], 0 when not, -1 on error. */
static int
key_less(PyObject *heap, Py_ssize_t a, Py_ssize_t b)
{
    return PyObject_RichCompareBool(PyList_GET_ITEM(heap, a), PyList_GET_ITEM(heap, b), Py_LT);
}

static int
frontier_push(Frontier *frontier, PyObject *heap, Py_ssize_t position)
{
    if (frontier->count == frontier->capacity) {
        const Py_ssize_t capacity = frontier->capacity * 2;
        Py_ssize_t *slots = PyMem_Realloc(frontier->slots, capacity * sizeof(Py_ssize_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        frontier->slots = slots;
        frontier->capacity = capacity;
    }
    Py_ssize_t *slots = frontier->slots;
    Py_ssize_t at = frontier->count++;
    while (at > 0) {
        const Py_ssize_t parent = (at - 1) / 2;
        const int less = key_less(heap, position, slots[parent]);
        if (less < 0) {
            return -1;
        }
        if (!less) {
            break;
        }
        slots[at] = slots[parent];
        at = parent;
    }
    slots[at] = position;
    return 0;
}

/* Remove the smallest position into *out; return -1 on error. */
static int
frontier_pop(Frontier *frontier, PyObject *heap, Py_ssize_t *out)
{
    Py_ssize_t *slots = frontier->slots;
    *out = slots[0];
    const Py_ssize_t last = slots[--frontier->count];
    const Py_ssize_t count = frontier->count;
    Py_ssize_t at = 0;
    while (1) {
        Py_ssize_t child = 2 * at + 1;
        if (child >= count) {
            break;
        }
        if (child + 1 < count) {
            const int right_less = key_less(heap, slots[child + 1], slots[child]);
            if (right_less < 0) {
                return -1;
            }
            child += right_less;
        }
        const int less = key_less(heap, slots[child], last);
        if (less < 0) {
            return -1;
        }
        if (!less) {
            break;
        }
        slots[at] = slots[child];
        at = child;
    }
    if (count) {
        slots[at] = last;
    }
    return 0;
}

static PyObject *
heap_top(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "heap_top(heap, levels, depth, sign)");
        return NULL;
    }
    PyObject *heap = args[0];
    PyObject *levels = args[1];
    if (!PyList_CheckExact(heap) || !PyDict_CheckExact(levels)) {
        PyErr_SetString(PyExc_TypeError, "heap_top needs a list and a dict");
        return NULL;
    }
    const Py_ssize_t depth = PyLong_AsSsize_t(args[2]);
    const long sign = PyLong_AsLong(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    PyObject *found = PyList_New(0);
    const Py_ssize_t size = PyList_GET_SIZE(heap);
    if (found == NULL || size == 0 || depth <= 0) {
        return found;
    }
    Frontier frontier = {PyMem_Malloc(16 * sizeof(Py_ssize_t)), 0, 16};
    if (frontier.slots == NULL) {
        Py_DECREF(found);
        return PyErr_NoMemory();
    }
    frontier.slots[frontier.count++] = 0;
    /* Keys leave the frontier in ascending order, so a repeated price can only
       repeat the last one found. */
    PyObject *last_found = NULL;
    while (frontier.count && PyList_GET_SIZE(found) < depth) {
        Py_ssize_t position;
        if (frontier_pop(&frontier, heap, &position) < 0) {
            goto error;
        }
        PyObject *key = PyList_GET_ITEM(heap, position);
        PyObject *price = sign < 0 ? PyNumber_Negative(key) : Py_NewRef(key);
        if (price == NULL) {
            goto error;
        }
        const int live = PyDict_Contains(levels, price);
        Py_DECREF(price);
        if (live < 0) {
            goto error;
        }
        if (live) {
            const int repeated =
                last_found == NULL ? 0 : PyObject_RichCompareBool(key, last_found, Py_EQ);
            if (repeated < 0) {
                goto error;
            }
            if (!repeated) {
                if (PyList_Append(found, key) < 0) {
                    goto error;
                }
                last_found = key;
            }
        }
        const Py_ssize_t child = 2 * position + 1;
        if (child < size) {
            if (frontier_push(&frontier, heap, child) < 0) {
                goto error;
            }
            if (child + 1 < size && frontier_push(&frontier, heap, child + 1) < 0) {
                goto error;
            }
        }
    }
    PyMem_Free(frontier.slots);
    return found;
error:
    PyMem_Free(frontier.slots);
    Py_DECREF(found);
    return NULL;
}

static PyMethodDef accel_methods[] = {
    {"fixed_levels", (PyCFunction)(void (*)(void))fixed_levels, METH_FASTCALL,
     "fixed_levels(raw, price_precision, size_precision) -> list of (price, size), or None "
     "when the pure-Python conversion has to decide."},
    {"heap_top", (PyCFunction)(void (*)(void))heap_top, METH_FASTCALL,
     "heap_top(heap, levels, depth, sign) -> the depth smallest live keys, smallest first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef accel_module = {
    PyModuleDef_HEAD_INIT,
    "kernel.book._accel",
    "Compiled level conversion and heap walk; kernel.book.accel has the reference.",
    0,
    accel_methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__accel(void)
{
    return PyModule_Create(&accel_module);
}
