/*
 * Compiled versions of the hottest loops of the market-data path.
 *
 * fixed_levels: a depth frame's [["price", "size"], ...] lists to (price, size)
 *   int tuples at fixed precision. Only plain ASCII decimals that fit in 64 bits
 *   are converted here; for anything else (a sign, another shape, too many
 *   digits, a non-zero digit past the precision) it returns None and the caller
 *   converts the whole list in Python, which also raises the exact errors.
 * depth_frame: a whole Binance depth-diff frame, bytes to ids and converted
 *   levels in one pass, for frames in exactly the layout the venue sends
 *   (None for anything else: the caller parses it with orjson).
 * apply_side: one side of L2Book.apply (dict writes, heappush of new prices).
 * top_levels: the (price, size) of the `depth` best live prices of a
 *   lazily-deleted heap, as kernel.book.accel.python_top_levels finds them.
 *
 * kernel/book/accel.py chooses between these and the pure-Python reference;
 * tests/book/test_accel.py and tests/book/test_depth_frame.py check that both
 * give identical results.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>

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
 * Set *out to the `length` bytes at `chars` scaled by 10**precision and return
 * 1 when they are unsigned ASCII digits with an optional fraction, the value
 * fits in a signed 64-bit integer and no non-zero digit lies past the
 * precision. Return 0 when the Python converter has to decide.
 */
static int
chars_to_fixed(const char *chars, Py_ssize_t length, int precision, long long *out)
{
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

/* chars_to_fixed for a str object; 0 for anything but an ASCII str. */
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
    return chars_to_fixed(
        (const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text), precision, out);
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
 * depth_frame: one pass over a combined-stream depth diff in exactly the layout
 * Binance sends it,
 *
 *   {"stream":"<name>","data":{"e":"depthUpdate","E":<int>[,"T":<int>],"s":"<text>",
 *    "U":<int>,"u":<int>[,"pu":<int>],"b":[["<price>","<size>"],...],"a":[...]}}
 *
 * with no whitespace, no escapes, integers of at most 18 digits (no sign, no
 * leading zero) and prices and sizes as chars_to_fixed takes them. Anything
 * else, or a stream missing from `precisions`, gives None: the caller then
 * parses the frame with orjson, which yields the same values and errors.
 */
typedef struct {
    const char *at;
    const char *end;
} Cursor;

/* Step over `literal` when the input continues with it. */
static int
take(Cursor *cursor, const char *literal, Py_ssize_t length)
{
    if (cursor->end - cursor->at < length || memcmp(cursor->at, literal, (size_t)length) != 0) {
        return 0;
    }
    cursor->at += length;
    return 1;
}

#define TAKE(cursor, literal) take((cursor), (literal), (Py_ssize_t)(sizeof(literal) - 1))

/* A string body up to its closing quote: printable ASCII, no backslash. */
static int
take_text(Cursor *cursor, const char **start, Py_ssize_t *length)
{
    const char *at = cursor->at;
    for (; at < cursor->end && *at != '"'; at++) {
        const unsigned char byte = (unsigned char)*at;
        if (byte < 0x20 || byte > 0x7e || byte == '\\') {
            return 0;
        }
    }
    if (at == cursor->end) {
        return 0;
    }
    *start = cursor->at;
    *length = at - cursor->at;
    cursor->at = at + 1;
    return 1;
}

/* A JSON integer: "0" or up to 18 digits not starting with 0. A digit after a
   leading 0 is left for the next literal to refuse. */
static int
take_int(Cursor *cursor, long long *value)
{
    const char *at = cursor->at;
    long long result = 0;
    int digits = 0;
    if (at < cursor->end && *at == '0') {
        at++;
    }
    else {
        for (; at < cursor->end && *at >= '0' && *at <= '9'; at++) {
            if (++digits > MAX_PRECISION) {
                return 0;
            }
            result = result * 10 + (*at - '0');
        }
        if (!digits) {
            return 0;
        }
    }
    *value = result;
    cursor->at = at;
    return 1;
}

/* A quoted price or size, converted: 1, or 0 when chars_to_fixed declines it. */
static int
take_fixed(Cursor *cursor, int precision, long long *value)
{
    if (!TAKE(cursor, "\"")) {
        return 0;
    }
    const char *quote = memchr(cursor->at, '"', (size_t)(cursor->end - cursor->at));
    if (quote == NULL || !chars_to_fixed(cursor->at, quote - cursor->at, precision, value)) {
        return 0;
    }
    cursor->at = quote + 1;
    return 1;
}

/* [["price","size"],...] to a list of (price, size) tuples: 1 with *out set,
   0 when declined, -1 on error. */
static int
take_levels(Cursor *cursor, int price_precision, int size_precision, PyObject **out)
{
    if (!TAKE(cursor, "[")) {
        return 0;
    }
    PyObject *levels = PyList_New(0);
    if (levels == NULL) {
        return -1;
    }
    if (!TAKE(cursor, "]")) {
        do {
            long long price, size;
            if (!TAKE(cursor, "[") || !take_fixed(cursor, price_precision, &price) ||
                !TAKE(cursor, ",") || !take_fixed(cursor, size_precision, &size) ||
                !TAKE(cursor, "]")) {
                Py_DECREF(levels);
                return 0;
            }
            PyObject *level = PyTuple_New(2);
            PyObject *price_int = level == NULL ? NULL : PyLong_FromLongLong(price);
            PyObject *size_int = price_int == NULL ? NULL : PyLong_FromLongLong(size);
            if (size_int == NULL) {
                Py_XDECREF(price_int);
                Py_XDECREF(level);
                Py_DECREF(levels);
                return -1;
            }
            PyTuple_SET_ITEM(level, 0, price_int);
            PyTuple_SET_ITEM(level, 1, size_int);
            const int appended = PyList_Append(levels, level);
            Py_DECREF(level);
            if (appended < 0) {
                Py_DECREF(levels);
                return -1;
            }
        } while (TAKE(cursor, ","));
        if (!TAKE(cursor, "]")) {
            Py_DECREF(levels);
            return 0;
        }
    }
    *out = levels;
    return 1;
}

/* A (price_precision, size_precision) pair both within MAX_PRECISION: 1, else 0. */
static int
read_pair(PyObject *pair, int *price_precision, int *size_precision)
{
    if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2 ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(pair, 0)) ||
        !PyLong_CheckExact(PyTuple_GET_ITEM(pair, 1))) {
        return 0;
    }
    int overflow = 0;
    const long price = PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(pair, 0), &overflow);
    const long size = overflow ? -1 : PyLong_AsLongAndOverflow(PyTuple_GET_ITEM(pair, 1), &overflow);
    if (overflow || price < 0 || price > MAX_PRECISION || size < 0 || size > MAX_PRECISION) {
        return 0;
    }
    *price_precision = (int)price;
    *size_precision = (int)size;
    return 1;
}

/*
 * depth_frame(payload, precisions) -> (stream, E, U, u, pu or None, bids, asks),
 * or None. `precisions` maps a stream name to the (price, size) precisions of
 * its instrument.
 */
static PyObject *
depth_frame(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "depth_frame(payload, precisions)");
        return NULL;
    }
    PyObject *payload = args[0];
    PyObject *precisions = args[1];
    if (!PyBytes_CheckExact(payload) || !PyDict_CheckExact(precisions)) {
        Py_RETURN_NONE;
    }
    Cursor cursor = {PyBytes_AS_STRING(payload),
                     PyBytes_AS_STRING(payload) + PyBytes_GET_SIZE(payload)};
    const char *name, *symbol;
    Py_ssize_t name_length, symbol_length;
    long long event_time, trade_time, first_id, last_id, previous_id = 0;
    int has_previous = 0;
    if (!TAKE(&cursor, "{\"stream\":\"") || !take_text(&cursor, &name, &name_length) ||
        !TAKE(&cursor, ",\"data\":{\"e\":\"depthUpdate\",\"E\":") ||
        !take_int(&cursor, &event_time)) {
        Py_RETURN_NONE;
    }
    if (TAKE(&cursor, ",\"T\":") && !take_int(&cursor, &trade_time)) {
        Py_RETURN_NONE; /* futures carry the transaction time; the feed does not use it */
    }
    if (!TAKE(&cursor, ",\"s\":\"") || !take_text(&cursor, &symbol, &symbol_length) ||
        !TAKE(&cursor, ",\"U\":") || !take_int(&cursor, &first_id) ||
        !TAKE(&cursor, ",\"u\":") || !take_int(&cursor, &last_id)) {
        Py_RETURN_NONE;
    }
    if (TAKE(&cursor, ",\"pu\":")) {
        if (!take_int(&cursor, &previous_id)) {
            Py_RETURN_NONE;
        }
        has_previous = 1;
    }
    if (!TAKE(&cursor, ",\"b\":")) {
        Py_RETURN_NONE;
    }
    PyObject *stream = PyUnicode_DecodeASCII(name, name_length, NULL);
    if (stream == NULL) {
        return NULL;
    }
    PyObject *pair = PyDict_GetItemWithError(precisions, stream); /* borrowed */
    int price_precision, size_precision;
    if (pair == NULL || !read_pair(pair, &price_precision, &size_precision)) {
        Py_DECREF(stream);
        if (PyErr_Occurred()) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *bids = NULL, *asks = NULL;
    int status = take_levels(&cursor, price_precision, size_precision, &bids);
    if (status == 1) {
        status = TAKE(&cursor, ",\"a\":") ? take_levels(&cursor, price_precision, size_precision, &asks) : 0;
    }
    if (status == 1 && !(TAKE(&cursor, "}}") && cursor.at == cursor.end)) {
        status = 0;
    }
    if (status != 1) {
        Py_DECREF(stream);
        Py_XDECREF(bids);
        Py_XDECREF(asks);
        if (status < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *previous = has_previous ? PyLong_FromLongLong(previous_id) : Py_NewRef(Py_None);
    PyObject *result = previous == NULL ? NULL
                                        : Py_BuildValue("(NLLLNNN)", stream, event_time, first_id,
                                                        last_id, previous, bids, asks);
    if (result == NULL && previous == NULL) {
        Py_DECREF(stream);
        Py_DECREF(bids);
        Py_DECREF(asks);
    }
    return result;
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
    {"depth_frame", (PyCFunction)(void (*)(void))depth_frame, METH_FASTCALL,
     "depth_frame(payload, precisions) -> (stream, E, U, u, pu or None, bids, asks) for a "
     "Binance depth diff in its usual layout, else None."},
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
