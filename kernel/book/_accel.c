/*
 * Compiled versions of the two hottest loops of the market-data path.
 *
 * fixed_levels: a depth frame's [["price", "size"], ...] lists to (price, size)
 *   int tuples at fixed precision. Only plain ASCII decimals that fit in 64 bits
 *   are converted here; for anything else (a sign, another shape, too many
 *   digits, a non-zero digit past the precision) it returns None and the caller
 *   converts the whole list in Python, which also raises the exact errors.
 * apply_side: one side of L2Book.apply (dict writes, heappush of new prices).
 * top_levels: the (price, size) of the `depth` best live prices of a
 *   lazily-deleted heap, as kernel.book.accel.python_top_levels finds them.
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
    if (!PyUnicode_CheckExact(text)) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (!PyUnicode_IS_READY(text)) {
        return 0; /* a legacy string: let the Python converter read it */
    }
#endif
    if (!PyUnicode_IS_ASCII(text)) {
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

/*
 * heappush as the heapq module does it: append, then move the new item up
 * while it is smaller than its parent.
 */
static int
heap_push(PyObject *heap, PyObject *item)
{
    if (PyList_Append(heap, item) < 0) {
        return -1;
    }
    const Py_ssize_t size = PyList_GET_SIZE(heap);
    Py_ssize_t at = size - 1;
    PyObject *new_item = PyList_GET_ITEM(heap, at);
    while (at > 0) {
        const Py_ssize_t parent_at = (at - 1) >> 1;
        PyObject *parent = PyList_GET_ITEM(heap, parent_at);
        Py_INCREF(parent);
        const int less = PyObject_RichCompareBool(new_item, parent, Py_LT);
        Py_DECREF(parent);
        if (less < 0) {
            return -1;
        }
        if (size != PyList_GET_SIZE(heap)) {
            /* A comparison ran Python code that changed the heap, as heapq refuses too. */
            PyErr_SetString(PyExc_RuntimeError, "list changed size during iteration");
            return -1;
        }
        if (!less) {
            break;
        }
        PyList_SET_ITEM(heap, at, PyList_GET_ITEM(heap, parent_at));
        at = parent_at;
    }
    PyList_SET_ITEM(heap, at, new_item);
    return 0;
}

/* Set one level of a side (size 0 deletes it), pushing a new price onto the heap. */
static int
apply_level(PyObject *levels, PyObject *heap, PyObject *price, PyObject *size, long sign)
{
    const int nonzero = PyObject_IsTrue(size);
    if (nonzero < 0) {
        return -1;
    }
    const int known = PyDict_Contains(levels, price);
    if (known < 0) {
        return -1;
    }
    if (!nonzero) {
        /* Deleting a level the side does not hold is a no-op. */
        return known ? PyDict_DelItem(levels, price) : 0;
    }
    if (!known) {
        PyObject *key = sign < 0 ? PyNumber_Negative(price) : Py_NewRef(price);
        if (key == NULL) {
            return -1;
        }
        const int pushed = heap_push(heap, key);
        Py_DECREF(key);
        if (pushed < 0) {
            return -1;
        }
    }
    return PyDict_SetItem(levels, price, size);
}

/*
 * apply_side(levels, heap, updates, sign): what L2Book.apply does for one side.
 * Returns False, having changed nothing, when `updates` is not a list or tuple
 * of (int, int) tuples; L2Book.apply then runs its Python loop.
 */
static PyObject *
apply_side(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "apply_side(levels, heap, updates, sign)");
        return NULL;
    }
    PyObject *levels = args[0];
    PyObject *heap = args[1];
    PyObject *updates = args[2];
    const long sign = PyLong_AsLong(args[3]);
    if (sign == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (!PyDict_CheckExact(levels) || !PyList_CheckExact(heap) ||
        !(PyList_CheckExact(updates) || PyTuple_CheckExact(updates))) {
        Py_RETURN_FALSE;
    }
    PyObject **items = PySequence_Fast_ITEMS(updates);
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(updates);
    for (Py_ssize_t index = 0; index < count; index++) {
        PyObject *item = items[index];
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(item, 0)) ||
            !PyLong_CheckExact(PyTuple_GET_ITEM(item, 1))) {
            Py_RETURN_FALSE;
        }
    }
    /* Keys of other types in `levels` could run Python code in a comparison,
       so every item is read afresh, kept alive while in use, and a list that
       changed meanwhile is refused rather than read stale. */
    for (Py_ssize_t index = 0; index < count; index++) {
        if (PySequence_Fast_GET_SIZE(updates) != count) {
            PyErr_SetString(PyExc_RuntimeError, "level updates changed while being applied");
            return NULL;
        }
        PyObject *item = PySequence_Fast_GET_ITEM(updates, index);
        if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_RuntimeError, "level updates changed while being applied");
            return NULL;
        }
        Py_INCREF(item);
        const int applied = apply_level(
            levels, heap, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), sign);
        Py_DECREF(item);
        if (applied < 0) {
            return NULL;
        }
    }
    Py_RETURN_TRUE;
}

/*
 * The frontier of top_levels: a binary min-heap of heap positions with their
 * keys read once into C integers, so ordering the frontier touches no Python
 * object.
 */
typedef struct {
    long long key;
    Py_ssize_t position;
} Candidate;

typedef struct {
    Candidate *slots;
    Py_ssize_t count;
    Py_ssize_t capacity;
} Frontier;

/* Read heap[position] as a C integer; 0 on success, 1 when it is not a plain int or does
   not fit, -1 on error. */
static int
read_key(PyObject *heap, Py_ssize_t position, long long *key)
{
    PyObject *item = PyList_GET_ITEM(heap, position);
    if (!PyLong_CheckExact(item)) {
        return 1; /* not a plain int: the Python walk compares it */
    }
    int overflow = 0;
    *key = PyLong_AsLongLongAndOverflow(item, &overflow);
    if (*key == -1 && PyErr_Occurred()) {
        return -1;
    }
    return overflow != 0;
}

/* Push heap[position]; 0 on success, 1 when read_key declines it, -1 on error. */
static int
frontier_push(Frontier *frontier, PyObject *heap, Py_ssize_t position)
{
    long long key;
    const int status = read_key(heap, position, &key);
    if (status != 0) {
        return status;
    }
    if (frontier->count == frontier->capacity) {
        const Py_ssize_t capacity = frontier->capacity * 2;
        Candidate *slots = PyMem_Realloc(frontier->slots, capacity * sizeof(Candidate));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        frontier->slots = slots;
        frontier->capacity = capacity;
    }
    Candidate *slots = frontier->slots;
    Py_ssize_t at = frontier->count++;
    while (at > 0) {
        const Py_ssize_t parent = (at - 1) / 2;
        if (slots[parent].key <= key) {
            break;
        }
        slots[at] = slots[parent];
        at = parent;
    }
    slots[at].key = key;
    slots[at].position = position;
    return 0;
}

static Candidate
frontier_pop(Frontier *frontier)
{
    Candidate *slots = frontier->slots;
    const Candidate smallest = slots[0];
    const Candidate last = slots[--frontier->count];
    const Py_ssize_t count = frontier->count;
    Py_ssize_t at = 0;
    while (1) {
        Py_ssize_t child = 2 * at + 1;
        if (child >= count) {
            break;
        }
        if (child + 1 < count && slots[child + 1].key < slots[child].key) {
            child++;
        }
        if (slots[child].key >= last.key) {
            break;
        }
        slots[at] = slots[child];
        at = child;
    }
    if (count) {
        slots[at] = last;
    }
    return smallest;
}

/* The pure-Python function `name` of kernel.book.accel, for heaps holding keys beyond 64 bits. */
static PyObject *
call_reference(const char *name, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *reference = PyImport_ImportModule("kernel.book.accel");
    if (reference == NULL) {
        return NULL;
    }
    PyObject *function = PyObject_GetAttrString(reference, name);
    Py_DECREF(reference);
    if (function == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(function, args, nargs, NULL);
    Py_DECREF(function);
    return result;
}

/*
 * top_levels(heap, levels, depth, sign): walk the heap (keys: price * sign)
 * from its root in key order, skipping deleted and repeated prices, until
 * `depth` live levels are found.
 */
static PyObject *
top_levels(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "top_levels(heap, levels, depth, sign)");
        return NULL;
    }
    PyObject *heap = args[0];
    PyObject *levels = args[1];
    if (!PyList_CheckExact(heap) || !PyDict_CheckExact(levels)) {
        PyErr_SetString(PyExc_TypeError, "top_levels needs a list and a dict");
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
    Frontier frontier = {PyMem_Malloc(32 * sizeof(Candidate)), 0, 32};
    if (frontier.slots == NULL) {
        Py_DECREF(found);
        return PyErr_NoMemory();
    }
    int status = frontier_push(&frontier, heap, 0);
    /* Keys leave the frontier in ascending order, so a repeated price can only
       repeat the last one found. */
    int any_found = 0;
    long long last_found = 0;
    while (status == 0 && frontier.count && PyList_GET_SIZE(found) < depth) {
        const Candidate candidate = frontier_pop(&frontier);
        if (!any_found || candidate.key != last_found) {
            PyObject *key = PyList_GET_ITEM(heap, candidate.position);
            PyObject *price = sign < 0 ? PyNumber_Negative(key) : Py_NewRef(key);
            if (price == NULL) {
                status = -1;
                break;
            }
            PyObject *level_size = PyDict_GetItemWithError(levels, price); /* borrowed */
            PyObject *entry = NULL;
            if (level_size != NULL) {
                entry = PyTuple_Pack(2, price, level_size);
            }
            Py_DECREF(price);
            if ((level_size == NULL && PyErr_Occurred()) || (level_size != NULL && entry == NULL)) {
                status = -1;
                break;
            }
            if (entry != NULL) {
                const int appended = PyList_Append(found, entry);
                Py_DECREF(entry);
                if (appended < 0) {
                    status = -1;
                    break;
                }
                any_found = 1;
                last_found = candidate.key;
            }
        }
        const Py_ssize_t child = 2 * candidate.position + 1;
        if (child < size) {
            status = frontier_push(&frontier, heap, child);
            if (status == 0 && child + 1 < size) {
                status = frontier_push(&frontier, heap, child + 1);
            }
        }
    }
    PyMem_Free(frontier.slots);
    if (status == 0) {
        return found;
    }
    Py_DECREF(found);
    if (status < 0) {
        return NULL;
    }
    return call_reference("python_top_levels", args, nargs);
}

static PyMethodDef accel_methods[] = {
    {"fixed_levels", (PyCFunction)(void (*)(void))fixed_levels, METH_FASTCALL,
     "fixed_levels(raw, price_precision, size_precision) -> list of (price, size), or None "
     "when the pure-Python conversion has to decide."},
    {"apply_side", (PyCFunction)(void (*)(void))apply_side, METH_FASTCALL,
     "apply_side(levels, heap, updates, sign) -> True when applied, False when L2Book.apply "
     "must run its Python loop."},
    {"top_levels", (PyCFunction)(void (*)(void))top_levels, METH_FASTCALL,
     "top_levels(heap, levels, depth, sign) -> (price, size) of the depth best live prices of "
     "a lazily-deleted heap of keys price * sign, best first."},
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
