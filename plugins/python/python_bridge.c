/* python_bridge.c - backends written in Python, behind the fairbench ABI.
 *
 * One .so, a factory: every module `NAME.py` in a backends folder is a
 * backend of its own named NAME (torch, tinygrad, numpy_ref, ...). The
 * folders: `python/backends/` next to this .so (the shipped ones), then each
 * folder of $FAIRBENCH_PYTHON_BACKENDS (colon-separated). Listing them reads
 * files only; the interpreter starts at the first probe() or create().
 *
 * The interpreter. Whichever Python the user names (option `python`, else
 * $FAIRBENCH_PYTHON, else the venv scripts/setup-frameworks.sh makes, else
 * python3 on PATH; an executable or a venv folder) is asked for its libpython
 * by running it once; that library is dlopen()ed RTLD_GLOBAL (extension
 * modules need its symbols) and every Py* function is looked up with dlsym.
 * Only CPython's stable ABI (3.9) is used, so one build serves Python 3.9 and
 * later, and the .so links no libpython: nothing else in fairbench depends on
 * Python. One interpreter per process: it is never finalised (frameworks do
 * not survive that) and a second, different `python` is refused.
 *
 * Threads. After start-up the GIL is released; every call takes it with
 * PyGILState_Ensure and gives it back before returning, from whichever
 * thread the host calls on.
 *
 * The Python side of the contract (the session class, the model wrapper,
 * errors to statuses) is fairbench.py next to this file; see
 * docs/python-backends.md.
 */
#define _GNU_SOURCE /* dladdr */
#define Py_LIMITED_API 0x03090000
#include <Python.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fairbench/plugin.h"

/* memoryview flags: stable since 3.3, but the limited-API headers name them
 * only from 3.11 on. */
#ifndef PyBUF_READ
#define PyBUF_READ 0x100
#define PyBUF_WRITE 0x200
#endif

#define PYB_VERSION "1.0.0"
#define PYB_MAX_BACKENDS 32
#define PYB_MIN_MINOR 9 /* Python 3.9 */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */

static void say(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buf, size_t size, const char *fmt, ...) {
    if (!buf || size == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The folder this .so was loaded from ("" if unknown). */
static void own_dir(char *out, size_t size) {
    Dl_info info;
    out[0] = 0;
    if (dladdr((void *)own_dir, &info) && info.dli_fname) {
        snprintf(out, size, "%s", info.dli_fname);
        char *slash = strrchr(out, '/');
        if (slash) *slash = 0;
        else
            snprintf(out, size, ".");
    }
}

/* ------------------------------------------------------------------------ */
/* The published backends: one per module file, found without Python.       */

/* A module declares, as plain one-line string assignments the bridge reads
 * as text (Python is not started to list backends):
 *     DESCRIPTION = "one line"
 *     CAPABILITIES = "cpu gpu f32 f16 bf16 jit graphs threads"   ("gpu" dropped from
 *                    a "cpu gpu" module on a machine without an NVIDIA driver)
 *     OPTIONS = "device"              (its per-backend options, if any) */
typedef struct pyb_backend {
    char name[64];
    char path[PATH_MAX];
    char description[200];
    char options[256]; /* space-separated option names the module takes */
    fb_plugin table;
} pyb_backend;

static pyb_backend g_backends[PYB_MAX_BACKENDS];
static uint32_t g_n_backends;
static int g_scanned;
static char g_helper_dir[PATH_MAX]; /* where fairbench.py is */

/* Value of `KEY = "..."` on a line of its own in the module's source. */
static void module_string(const char *path, const char *key, char *out, size_t size) {
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    size_t key_len = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, key_len) != 0) continue;
        const char *p = line + key_len;
        while (*p == ' ') p++;
        if (*p++ != '=') continue;
        while (*p == ' ') p++;
        char quote = *p;
        if (quote != '"' && quote != '\'') continue;
        const char *end = strchr(++p, quote);
        if (!end) continue;
        snprintf(out, size, "%.*s", (int)(end - p), p);
        break;
    }
    fclose(f);
}

static uint32_t capabilities_from(const char *text) {
    static const struct {
        const char *word;
        uint32_t bit;
    } words[] = {{"cpu", FB_CAP_CPU},
                 {"gpu", FB_CAP_GPU},
                 {"f32", FB_CAP_PRECISION_F32},
                 {"f16", FB_CAP_PRECISION_F16},
                 {"bf16", FB_CAP_PRECISION_BF16},
                 {"native", FB_CAP_PRECISION_NATIVE},
                 {"jit", FB_CAP_JIT},
                 {"graphs", FB_CAP_GRAPHS},
                 {"threads", FB_CAP_THREADS}};
    uint32_t caps = 0;
    char copy[256], *save = NULL;
    snprintf(copy, sizeof copy, "%s", text);
    for (char *w = strtok_r(copy, " ,", &save); w; w = strtok_r(NULL, " ,", &save))
        for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
            if (strcmp(w, words[i].word) == 0) caps |= words[i].bit;
    return caps;
}

static int valid_name(const char *name, size_t len) {
    if (len == 0 || len >= sizeof g_backends[0].name) return 0;
    for (size_t i = 0; i < len; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') || name[i] == '_')) return 0;
    return name[0] != '_';
}

static void fill_table(pyb_backend *b, uint32_t slot);

/* An NVIDIA driver is loaded here (a file-system look: no CUDA call). */
static int nvidia_device_present(void) {
    return access("/proc/driver/nvidia/version", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;
}

static void scan_folder(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) && g_n_backends < PYB_MAX_BACKENDS) {
        size_t len = strlen(e->d_name);
        if (len < 4 || strcmp(e->d_name + len - 3, ".py") != 0 || !valid_name(e->d_name, len - 3)) continue;
        int seen = 0; /* an earlier folder's module of the same name wins */
        for (uint32_t i = 0; i < g_n_backends; i++)
            if (strncmp(g_backends[i].name, e->d_name, len - 3) == 0 && g_backends[i].name[len - 3] == 0) seen = 1;
        if (seen) continue;
        pyb_backend *b = &g_backends[g_n_backends];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%.*s", (int)(len - 3), e->d_name);
        if (snprintf(b->path, sizeof b->path, "%s/%s", dir, e->d_name) >= (int)sizeof b->path) continue;
        if (!is_file(b->path)) continue;
        module_string(b->path, "DESCRIPTION", b->description, sizeof b->description);
        if (!b->description[0]) say(b->description, sizeof b->description, "Python backend %s", b->name);
        module_string(b->path, "OPTIONS", b->options, sizeof b->options);
        char caps[256];
        module_string(b->path, "CAPABILITIES", caps, sizeof caps);
        fill_table(b, g_n_backends);
        b->table.capabilities = capabilities_from(caps);
        /* A module that runs on a CPU or a GPU claims the GPU only where one
         * is: the host treats a GPU backend's memory and limits as a GPU's. */
        if ((b->table.capabilities & FB_CAP_CPU) && !nvidia_device_present())
            b->table.capabilities &= ~(uint32_t)FB_CAP_GPU;
        g_n_backends++;
    }
    closedir(d);
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const pyb_backend *)a)->name, ((const pyb_backend *)b)->name);
}

static void scan_backends(void) {
    if (g_scanned) return;
    g_scanned = 1;
    char dir[PATH_MAX], folder[PATH_MAX + 32];
    own_dir(dir, sizeof dir);
    say(g_helper_dir, sizeof g_helper_dir, "%s/python", dir);
    snprintf(folder, sizeof folder, "%s/python/backends", dir);
    scan_folder(folder);
    uint32_t shipped = g_n_backends;
    const char *env = getenv("FAIRBENCH_PYTHON_BACKENDS");
    if (env && env[0]) {
        char *copy = strdup(env), *save = NULL;
        for (char *tok = copy ? strtok_r(copy, ":", &save) : NULL; tok; tok = strtok_r(NULL, ":", &save))
            scan_folder(tok);
        free(copy);
    }
    /* Shipped ones first, each group in name order, so indices are stable. */
    qsort(g_backends, shipped, sizeof g_backends[0], name_cmp);
    qsort(g_backends + shipped, g_n_backends - shipped, sizeof g_backends[0], name_cmp);
    for (uint32_t i = 0; i < g_n_backends; i++) fill_table(&g_backends[i], i);
}

/* ------------------------------------------------------------------------ */
/* The interpreter: found, loaded and started at run time.                  */

/* Every CPython function the bridge calls, looked up in the loaded libpython.
 * The types come from the limited-API headers; nothing links to them. */
// clang-format off
#define PY_FUNCTIONS(X) \
    X(Py_InitializeEx) X(Py_IsInitialized) X(Py_SetProgramName) X(Py_SetPythonHome) X(Py_DecodeLocale) \
    X(PyEval_SaveThread) X(PyGILState_Ensure) X(PyGILState_Release) X(Py_IncRef) X(Py_DecRef) \
    X(PyImport_ImportModule) X(PyObject_GetAttrString) X(PyObject_CallFunctionObjArgs) X(PyObject_IsTrue) \
    X(PyLong_FromLong) X(PyLong_FromLongLong) X(PyLong_FromUnsignedLongLong) X(PyLong_FromVoidPtr) \
    X(PyLong_AsLong) X(PyLong_AsLongLong) X(PyUnicode_FromString) X(PyUnicode_DecodeFSDefault) \
    X(PyUnicode_AsUTF8String) X(PyBytes_AsString) X(PyFloat_FromDouble) X(PyTuple_New) X(PyTuple_SetItem) \
    X(PyTuple_GetItem) X(PyTuple_Size) X(PyList_New) X(PyList_Append) X(PyDict_New) X(PyDict_SetItemString) \
    X(PyDict_GetItemString) X(PyMemoryView_FromMemory) X(PyErr_Occurred) X(PyErr_Fetch) \
    X(PyErr_NormalizeException) X(PyErr_Clear) X(PySys_SetObject)
// clang-format on

/* Py_SetProgramName and Py_SetPythonHome are deprecated since 3.11 in favour
 * of PyConfig, which is not in the stable ABI: they remain the stable way to
 * tell an embedded interpreter where it lives. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
typedef struct pyb_python {
#define PY_FIELD(fn) __typeof__(fn) *fn;
    PY_FUNCTIONS(PY_FIELD)
#undef PY_FIELD
    PyObject *none;   /* Py_None */
    PyObject *helper; /* the fairbench module */
    char executable[PATH_MAX];
    char version[16];
    int started; /* 1: ready; -1: failed (start_error says why) */
    char start_error[512];
} pyb_python;

#pragma GCC diagnostic pop

static pyb_python py;
static pthread_mutex_t g_start_lock = PTHREAD_MUTEX_INITIALIZER;

/* Which Python: `requested` (option), $FAIRBENCH_PYTHON, the set-up script's
 * venv, python3 on PATH. A folder means a venv (its bin/python). */
static int resolve_python(const char *requested, char *out, size_t size, char *msg, size_t msg_size) {
    const char *env = getenv("FAIRBENCH_PYTHON");
    const char *named = requested && requested[0] ? requested : env && env[0] ? env : NULL;
    const char *from = requested && requested[0] ? "option python" : "FAIRBENCH_PYTHON";
    if (named) {
        if (is_dir(named)) snprintf(out, size, "%s/bin/python", named);
        else
            snprintf(out, size, "%s", named);
        if (!strchr(out, '/')) { /* a bare name: look on PATH below */
            char name[NAME_MAX + 1];
            snprintf(name, sizeof name, "%s", out);
            out[0] = 0;
            const char *path = getenv("PATH");
            char *copy = strdup(path ? path : ""), *save = NULL;
            for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !out[0]; d = strtok_r(NULL, ":", &save)) {
                char cand[PATH_MAX];
                if (snprintf(cand, sizeof cand, "%s/%s", d, name) < (int)sizeof cand && access(cand, X_OK) == 0)
                    snprintf(out, size, "%s", cand);
            }
            free(copy);
            if (!out[0]) {
                say(msg, msg_size, "%s names '%s', which is not on PATH", from, name);
                return -1;
            }
        }
        if (access(out, X_OK) != 0) {
            say(msg, msg_size, "%s names '%s', which is not an executable Python or a venv folder", from, named);
            return -1;
        }
        return 0;
    }
    const char *home = getenv("HOME");
    if (home && snprintf(out, size, "%s/.cache/fairbench/venv/bin/python", home) < (int)size && access(out, X_OK) == 0)
        return 0;
    const char *path = getenv("PATH");
    char *copy = strdup(path ? path : ""), *save = NULL;
    out[0] = 0;
    for (char *d = copy ? strtok_r(copy, ":", &save) : NULL; d && !out[0]; d = strtok_r(NULL, ":", &save)) {
        char cand[PATH_MAX];
        if (snprintf(cand, sizeof cand, "%s/python3", d) < (int)sizeof cand && access(cand, X_OK) == 0)
            snprintf(out, size, "%s", cand);
    }
    free(copy);
    if (!out[0]) {
        say(msg, msg_size,
            "no Python found: set FAIRBENCH_PYTHON, run scripts/setup-frameworks.sh, or put python3 on PATH");
        return -1;
    }
    return 0;
}

/* What the chosen python says about itself, one item a line: version,
 * libpython, executable, home, then sys.path entries. */
static const char QUERY_SCRIPT[] =
    "import os, sys, sysconfig\n"
    "v = sysconfig.get_config_var\n"
    "names = [n for n in (v('INSTSONAME'), v('LDLIBRARY')) if n and '.so' in n]\n"
    "dirs = [d for d in (v('LIBDIR'), os.path.join(sys.base_prefix, 'lib'), v('LIBPL')) if d]\n"
    "if v('MULTIARCH') and v('LIBDIR'): dirs.append(os.path.join(v('LIBDIR'), v('MULTIARCH')))\n"
    "lib = next((os.path.join(d, n) for n in names for d in dirs if os.path.exists(os.path.join(d, n))), '')\n"
    "print('%d.%d' % sys.version_info[:2])\n"
    "print(lib if v('Py_ENABLE_SHARED') else '')\n"
    "print(sys.executable)\n"
    "print(sys.base_prefix + (':' + sys.base_exec_prefix if sys.base_exec_prefix != sys.base_prefix else ''))\n"
    "print('\\n'.join(sys.path[1:]))\n";

/* Runs `python -c QUERY_SCRIPT`; its output in out (NUL-terminated). */
static int run_query(const char *python, char *out, size_t size, char *msg, size_t msg_size) {
    int fds[2];
    if (pipe(fds) != 0) {
        say(msg, msg_size, "cannot ask %s about itself: pipe failed (%s)", python, strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]), close(fds[1]);
        say(msg, msg_size, "cannot ask %s about itself: fork failed (%s)", python, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]), close(fds[1]);
        execl(python, python, "-E", "-c", QUERY_SCRIPT, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t got;
    while ((got = read(fds[0], out + used, size - 1 - used)) > 0 || (got < 0 && errno == EINTR))
        if (got > 0) used += (size_t)got;
    out[used] = 0;
    close(fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        say(msg, msg_size, "%s did not run (exit status %d): is it a Python interpreter?", python,
            WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return 0;
}

static char *next_line(char **cursor) {
    char *line = *cursor;
    if (!line || !*line) return NULL;
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0, *cursor = nl + 1;
    else
        *cursor = line + strlen(line);
    return line;
}

/* Loads libpython, starts the interpreter with the user's sys.path and
 * imports the helper. Called with g_start_lock held. */
static int start_python(const char *python, char *msg, size_t msg_size) {
    static char query[1 << 16];
    if (run_query(python, query, sizeof query, msg, msg_size)) return -1;
    char *cursor = query;
    const char *version = next_line(&cursor), *lib = next_line(&cursor), *exe = next_line(&cursor),
               *home = next_line(&cursor);
    int major = 0, minor = 0;
    if (!version || sscanf(version, "%d.%d", &major, &minor) != 2 || !lib || !exe || !home) {
        say(msg, msg_size, "%s gave an answer the bridge cannot read (is it CPython?)", python);
        return -1;
    }
    if (major != 3 || minor < PYB_MIN_MINOR) {
        say(msg, msg_size, "%s is Python %s; the bridge needs 3.%d or later", python, version, PYB_MIN_MINOR);
        return -1;
    }
    if (!lib[0]) {
        say(msg, msg_size, "%s (Python %s) has no shared libpython (built without --enable-shared)", python, version);
        return -1;
    }
    void *handle = dlopen(lib, RTLD_NOW | RTLD_GLOBAL);
    if (!handle) {
        say(msg, msg_size, "cannot load %s's library %s: %s", python, lib, dlerror());
        return -1;
    }
#define PY_RESOLVE(fn)                                                           \
    *(void **)(&py.fn) = dlsym(handle, #fn);                                     \
    if (!py.fn) {                                                                \
        say(msg, msg_size, "no symbol %s in %s (Python %s)", #fn, lib, version); \
        return -1;                                                               \
    }
    PY_FUNCTIONS(PY_RESOLVE)
#undef PY_RESOLVE
    py.none = (PyObject *)dlsym(handle, "_Py_NoneStruct");
    if (!py.none) {
        say(msg, msg_size, "no symbol _Py_NoneStruct in %s (Python %s)", lib, version);
        return -1;
    }
    snprintf(py.executable, sizeof py.executable, "%s", exe);
    snprintf(py.version, sizeof py.version, "%s", version);

    if (!py.Py_IsInitialized()) {
        /* Decoded strings must outlive the interpreter: never freed. */
        wchar_t *w_exe = py.Py_DecodeLocale(exe, NULL), *w_home = py.Py_DecodeLocale(home, NULL);
        if (!w_exe || !w_home) {
            say(msg, msg_size, "cannot decode the path of %s", python);
            return -1;
        }
        py.Py_SetProgramName(w_exe);
        py.Py_SetPythonHome(w_home);
        py.Py_InitializeEx(0); /* 0: leave the host's signal handlers alone */
    } else {
        (void)py.PyGILState_Ensure(); /* someone else started it; hold the GIL like Py_InitializeEx leaves us */
    }
    /* The user's python's own path (its venv's site-packages included), then
     * the helper's folder. */
    PyObject *path = py.PyList_New(0);
    for (const char *line; path && (line = next_line(&cursor));) {
        PyObject *s = py.PyUnicode_DecodeFSDefault(line);
        if (s) py.PyList_Append(path, s), py.Py_DecRef(s);
    }
    PyObject *helper_dir = py.PyUnicode_DecodeFSDefault(g_helper_dir);
    PyObject *exe_obj = py.PyUnicode_DecodeFSDefault(exe);
    if (path && helper_dir) py.PyList_Append(path, helper_dir);
    if (path) py.PySys_SetObject("path", path);
    if (exe_obj) py.PySys_SetObject("executable", exe_obj);
    py.Py_DecRef(path), py.Py_DecRef(helper_dir), py.Py_DecRef(exe_obj);
    py.helper = py.PyImport_ImportModule("fairbench");
    if (!py.helper) {
        py.PyErr_Clear();
        say(msg, msg_size, "%s cannot import the bridge's helper fairbench.py from %s", python, g_helper_dir);
        py.PyEval_SaveThread();
        return -1;
    }
    py.PyEval_SaveThread(); /* release the GIL: each call takes it again */
    return 0;
}

/* Starts the interpreter once per process; later calls must name the same one. */
static int ensure_python(const char *requested, char *msg, size_t msg_size) {
    char exe[PATH_MAX];
    pthread_mutex_lock(&g_start_lock);
    int rc = 0;
    if (py.started == 0) {
        if (resolve_python(requested, exe, sizeof exe, py.start_error, sizeof py.start_error) ||
            start_python(exe, py.start_error, sizeof py.start_error))
            py.started = -1;
        else
            py.started = 1;
    }
    if (py.started < 0) {
        say(msg, msg_size, "%s", py.start_error);
        rc = -1;
    } else if (requested && requested[0]) {
        char want[PATH_MAX], why[256];
        if (resolve_python(requested, want, sizeof want, why, sizeof why) == 0) {
            char real_want[PATH_MAX], real_have[PATH_MAX];
            if (!realpath(want, real_want) || !realpath(py.executable, real_have) || strcmp(real_want, real_have)) {
                /* realpath of a venv's python resolves to its base: compare as given too */
                if (strcmp(want, py.executable) != 0) {
                    say(msg, msg_size, "this process already runs Python from %s; cannot switch to %s", py.executable,
                        want);
                    rc = -1;
                }
            }
        }
    }
    pthread_mutex_unlock(&g_start_lock);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Python errors to a status and one sentence                               */

/* Fetches the pending exception; the helper turns it into (status,
 * "Type: message"). The GIL is held. */
static fb_status take_error(const char *backend, const char *call, char *msg, size_t msg_size) {
    PyObject *type = NULL, *value = NULL, *tb = NULL;
    py.PyErr_Fetch(&type, &value, &tb);
    py.PyErr_NormalizeException(&type, &value, &tb);
    fb_status st = FB_ERR_INTERNAL;
    const char *text = NULL;
    PyObject *describe = py.PyObject_GetAttrString(py.helper, "_describe");
    PyObject *res =
        describe ? py.PyObject_CallFunctionObjArgs(describe, type ? type : py.none, value ? value : py.none, NULL)
                 : NULL;
    PyObject *bytes = NULL;
    if (res && py.PyTuple_Size(res) == 2) {
        long code = py.PyLong_AsLong(py.PyTuple_GetItem(res, 0));
        if (code > 0 && code <= FB_ERR_INTERNAL) st = (fb_status)code;
        bytes = py.PyUnicode_AsUTF8String(py.PyTuple_GetItem(res, 1));
        if (bytes) text = py.PyBytes_AsString(bytes);
    }
    if (py.PyErr_Occurred()) py.PyErr_Clear();
    say(msg, msg_size, "%s: %s: %s", backend, call,
        text ? text : "Python raised an exception the bridge cannot describe");
    py.Py_DecRef(bytes), py.Py_DecRef(res), py.Py_DecRef(describe);
    py.Py_DecRef(type), py.Py_DecRef(value), py.Py_DecRef(tb);
    return st;
}

/* ------------------------------------------------------------------------ */
/* Sessions                                                                  */

struct fb_session {
    const pyb_backend *backend;
    PyObject *object;                   /* the module's Backend instance */
    PyObject *prefill, *decode, *reset; /* its bound methods, looked up once */
    PyObject *memory, *effective;
    uint32_t n_vocab, n_ctx, pos; /* positions used, of n_ctx (the KV cache) */
    char error[512];
};

static const char *precision_word(fb_precision p) {
    switch (p) {
    case FB_PRECISION_F32: return "f32";
    case FB_PRECISION_F16: return "f16";
    case FB_PRECISION_BF16: return "bf16";
    case FB_PRECISION_NATIVE: return "native";
    }
    return "unknown";
}

static fb_precision precision_from(const char *word) {
    if (strcmp(word, "f16") == 0) return FB_PRECISION_F16;
    if (strcmp(word, "bf16") == 0) return FB_PRECISION_BF16;
    if (strcmp(word, "native") == 0) return FB_PRECISION_NATIVE;
    return FB_PRECISION_F32;
}

/* dict[key] = value, taking the reference to value. */
static void put(PyObject *dict, const char *key, PyObject *value) {
    if (value) py.PyDict_SetItemString(dict, key, value), py.Py_DecRef(value);
}

static PyObject *str_or_none(const char *s) {
    if (!s) {
        py.Py_IncRef(py.none);
        return py.none;
    }
    return py.PyUnicode_FromString(s);
}

/* (type, shape in numpy order, read-only memoryview over the mapped bytes,
 * address) of one tensor view: no copy. */
static PyObject *tensor_tuple(const fb_tensor_view *t) {
    PyObject *shape = py.PyTuple_New(t->n_dims);
    for (uint32_t d = 0; shape && d < t->n_dims; d++)
        py.PyTuple_SetItem(shape, (Py_ssize_t)d, py.PyLong_FromLongLong(t->ne[t->n_dims - 1 - d]));
    PyObject *tuple = py.PyTuple_New(4);
    if (!tuple || !shape) {
        py.Py_DecRef(shape), py.Py_DecRef(tuple);
        return NULL;
    }
    py.PyTuple_SetItem(tuple, 0, py.PyLong_FromLong((long)t->type));
    py.PyTuple_SetItem(tuple, 1, shape);
    py.PyTuple_SetItem(tuple, 2,
                       py.PyMemoryView_FromMemory((char *)(uintptr_t)t->data, (Py_ssize_t)t->n_bytes, PyBUF_READ));
    py.PyTuple_SetItem(tuple, 3, py.PyLong_FromVoidPtr((void *)(uintptr_t)t->data));
    return tuple;
}

/* Layer i: 1.1 hosts state the stride; a 1.0 host's layers are 1.0 views. */
static const fb_layer_view *layer_at(const fb_model_view *m, uint32_t i) {
    int stated = m->struct_size >= offsetof(fb_model_view, layer_view_size) + sizeof m->layer_view_size &&
                 m->layer_view_size >= sizeof(fb_layer_view);
    if (stated) return FB_MODEL_LAYER(m, i);
    return m->layers + i;
}

static PyObject *model_dict(const fb_host *host, const fb_model_view *m) {
    PyObject *d = py.PyDict_New(), *tensors = py.PyDict_New();
    if (!d || !tensors) {
        py.Py_DecRef(d), py.Py_DecRef(tensors);
        return NULL;
    }
    put(d, "path", str_or_none(m->path));
    put(d, "name", str_or_none(m->name));
    put(d, "arch", str_or_none(m->arch));
    const struct {
        const char *key;
        uint32_t value;
    } ints[] = {{"n_embd", m->n_embd},       {"n_layer", m->n_layer},   {"n_head", m->n_head},
                {"n_head_kv", m->n_head_kv}, {"head_dim", m->head_dim}, {"n_ff", m->n_ff},
                {"n_ctx", m->n_ctx},         {"n_vocab", m->n_vocab},   {"n_rot", m->n_rot}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        put(d, ints[i].key, py.PyLong_FromLong((long)ints[i].value));
    put(d, "rope_freq_base", py.PyFloat_FromDouble(m->rope_freq_base));
    put(d, "rms_eps", py.PyFloat_FromDouble(m->rms_eps));
    put(d, "tied_output", py.PyLong_FromLong(m->tied_output));
    put(d, "decode_bytes_native", py.PyLong_FromUnsignedLongLong(m->decode_bytes_native));
    /* The host's block-format decoder, for ctypes: int f(u32 type, const void *src, float *dst, i64 n). */
    union {
        int (*fn)(uint32_t, const void *, float *, int64_t);
        uintptr_t address;
    } dequant = {.fn = host->dequantize_row_f32};
    put(d, "dequantize_row_f32", py.PyLong_FromVoidPtr((void *)dequant.address));
    put(tensors, "token_embd.weight", tensor_tuple(m->token_embd));
    put(tensors, "output_norm.weight", tensor_tuple(m->output_norm));
    put(tensors, "output.weight", tensor_tuple(m->output));
    if (m->rope_freqs) put(tensors, "rope_freqs.weight", tensor_tuple(m->rope_freqs));
    for (uint32_t i = 0; i < m->n_layer; i++) {
        const fb_layer_view *l = layer_at(m, i);
        const struct {
            const char *name;
            const fb_tensor_view *t;
        } ts[] = {{"attn_norm", &l->attn_norm}, {"attn_q", &l->attn_q},           {"attn_k", &l->attn_k},
                  {"attn_v", &l->attn_v},       {"attn_output", &l->attn_output}, {"ffn_norm", &l->ffn_norm},
                  {"ffn_gate", &l->ffn_gate},   {"ffn_up", &l->ffn_up},           {"ffn_down", &l->ffn_down}};
        for (size_t k = 0; k < sizeof ts / sizeof ts[0]; k++) {
            char key[64];
            snprintf(key, sizeof key, "blk.%u.%s.weight", i, ts[k].name);
            put(tensors, key, tensor_tuple(ts[k].t));
        }
    }
    put(d, "tensors", tensors);
    return d;
}

static PyObject *settings_dict(const fb_settings *s, uint32_t max_context) {
    PyObject *d = py.PyDict_New(), *options = py.PyDict_New();
    if (!d || !options) {
        py.Py_DecRef(d), py.Py_DecRef(options);
        return NULL;
    }
    static const char *const caches[] = {"cold", "warm"};
    put(d, "weight_precision", py.PyUnicode_FromString(precision_word(s->weight_precision)));
    put(d, "accumulate_precision", py.PyUnicode_FromString(precision_word(s->accumulate_precision)));
    put(d, "allow_jit", py.PyLong_FromLong(s->allow_jit != 0));
    put(d, "allow_graphs", py.PyLong_FromLong(s->allow_graphs != 0));
    put(d, "jit_cache", py.PyUnicode_FromString(caches[s->jit_cache == FB_JIT_CACHE_WARM]));
    put(d, "threads", py.PyLong_FromLong(s->threads));
    put(d, "max_context", py.PyLong_FromLong((long)max_context));
    put(d, "cache_dir", str_or_none(s->cache_dir));
    put(d, "device_index", py.PyLong_FromLong(s->device_index));
    int has_options = s->struct_size >= offsetof(fb_settings, options) + sizeof s->options;
    for (uint32_t i = 0; has_options && i < s->n_options; i++)
        if (strcmp(s->options[i].key, "python") != 0)
            put(options, s->options[i].key, py.PyUnicode_FromString(s->options[i].value));
    put(d, "options", options);
    return d;
}

static const char *option_value(const fb_settings *s, const char *key) {
    if (s->struct_size < offsetof(fb_settings, options) + sizeof s->options) return NULL;
    for (uint32_t i = 0; i < s->n_options; i++)
        if (s->options[i].key && strcmp(s->options[i].key, key) == 0) return s->options[i].value;
    return NULL;
}

static void session_free_objects(fb_session *s) {
    py.Py_DecRef(s->prefill), py.Py_DecRef(s->decode), py.Py_DecRef(s->reset);
    py.Py_DecRef(s->memory), py.Py_DecRef(s->effective);
    if (s->object) {
        /* Let the backend free what it holds now, not at the next collection. */
        PyObject *close = py.PyObject_GetAttrString(py.helper, "_close");
        PyObject *r = close ? py.PyObject_CallFunctionObjArgs(close, s->object, NULL) : NULL;
        if (!r) py.PyErr_Clear();
        py.Py_DecRef(r), py.Py_DecRef(close);
    }
    py.Py_DecRef(s->object);
    s->object = s->prefill = s->decode = s->reset = s->memory = s->effective = NULL;
}

static fb_status bridge_create(const pyb_backend *b, const fb_host *host, const fb_model_view *model,
                               const fb_settings *settings, fb_session **out, char *msg, size_t msg_size) {
    if (out) *out = NULL;
    if (!host || !model || !settings || !out) {
        say(msg, msg_size, "%s: create: a NULL host, model, settings or out", b->name);
        return FB_ERR_INVALID_ARGUMENT;
    }
    char why[512];
    if (ensure_python(option_value(settings, "python"), why, sizeof why)) {
        say(msg, msg_size, "%s: %s", b->name, why);
        return FB_ERR_UNAVAILABLE;
    }
    if (settings->threads < 0 && (b->table.capabilities & FB_CAP_THREADS)) {
        say(msg, msg_size, "%s: create: threads = %d (0 means every CPU of the process, N > 0 that many)", b->name,
            (int)settings->threads);
        return FB_ERR_INVALID_ARGUMENT;
    }
    uint32_t max_context = settings->max_context ? settings->max_context : model->n_ctx;
    if (max_context > model->n_ctx) max_context = model->n_ctx;
    fb_session *s = calloc(1, sizeof *s);
    if (!s) {
        say(msg, msg_size, "%s: create: out of memory", b->name);
        return FB_ERR_OUT_OF_MEMORY;
    }
    s->backend = b;
    s->n_vocab = model->n_vocab;
    s->n_ctx = max_context;
    PyGILState_STATE gil = py.PyGILState_Ensure();
    fb_status st = FB_OK;
    PyObject *create = py.PyObject_GetAttrString(py.helper, "_create");
    PyObject *path = py.PyUnicode_DecodeFSDefault(b->path), *name = py.PyUnicode_FromString(b->name);
    PyObject *mdict = model_dict(host, model), *sdict = settings_dict(settings, max_context);
    if (create && path && name && mdict && sdict)
        s->object = py.PyObject_CallFunctionObjArgs(create, path, name, mdict, sdict, NULL);
    py.Py_DecRef(create), py.Py_DecRef(path), py.Py_DecRef(name), py.Py_DecRef(mdict), py.Py_DecRef(sdict);
    if (!s->object) st = take_error(b->name, "create", msg, msg_size);
    else {
        s->prefill = py.PyObject_GetAttrString(s->object, "prefill");
        s->decode = py.PyObject_GetAttrString(s->object, "decode");
        s->reset = py.PyObject_GetAttrString(s->object, "reset");
        s->memory = py.PyObject_GetAttrString(py.helper, "_memory");
        s->effective = py.PyObject_GetAttrString(py.helper, "_effective_settings");
        if (!s->prefill || !s->decode || !s->reset || !s->memory || !s->effective)
            st = take_error(b->name, "create", msg, msg_size);
    }
    if (st != FB_OK) {
        session_free_objects(s);
        py.PyGILState_Release(gil);
        free(s);
        return st;
    }
    py.PyGILState_Release(gil);
    *out = s;
    return FB_OK;
}

/* A step's Python call, its result read as the next token. The GIL is held. */
static fb_status step_result(fb_session *s, const char *call, PyObject *result, int32_t *next_token) {
    if (!result) return take_error(s->backend->name, call, s->error, sizeof s->error);
    long next = py.PyLong_AsLong(result);
    py.Py_DecRef(result);
    if (next == -1 && py.PyErr_Occurred()) return take_error(s->backend->name, call, s->error, sizeof s->error);
    if (next < 0 || next >= (long)s->n_vocab) {
        say(s->error, sizeof s->error, "%s: %s returned token %ld, outside the vocabulary of %u", s->backend->name,
            call, next, s->n_vocab);
        return FB_ERR_INTERNAL;
    }
    if (next_token) *next_token = (int32_t)next;
    return FB_OK;
}

/* A writable memoryview over the host's logits buffer, or None. */
static PyObject *logits_view(float *logits, size_t n_floats) {
    if (!logits) {
        py.Py_IncRef(py.none);
        return py.none;
    }
    return py.PyMemoryView_FromMemory((char *)logits, (Py_ssize_t)(n_floats * sizeof(float)), PyBUF_WRITE);
}

/* The buffer is the host's only during the call: a view the backend kept
 * must not reach it afterwards. */
static void release_view(PyObject *view) {
    if (view && view != py.none) {
        PyObject *release = py.PyObject_GetAttrString(view, "release");
        PyObject *r = release ? py.PyObject_CallFunctionObjArgs(release, NULL) : NULL;
        if (!r) py.PyErr_Clear(); /* still exported by the backend: it keeps a dead view, not our memory */
        py.Py_DecRef(r), py.Py_DecRef(release);
    }
    py.Py_DecRef(view);
}

static fb_status bridge_prefill(fb_session *s, const int32_t *tokens, uint32_t n_tokens, uint32_t flags, float *logits,
                                int32_t *next_token) {
    if (!s) return FB_ERR_INVALID_ARGUMENT;
    s->error[0] = 0;
    flags &= FB_LOGITS_LAST | FB_LOGITS_ALL; /* other bits are reserved: ignored */
    if (!tokens || n_tokens == 0 || !next_token || (flags != FB_LOGITS_NONE && !logits) || flags > FB_LOGITS_ALL) {
        say(s->error, sizeof s->error, "%s: prefill: NULL tokens or next_token, no tokens, or flags %u without logits",
            s->backend->name, flags);
        return FB_ERR_INVALID_ARGUMENT;
    }
    /* the context first: a refused prefill reads none of the tokens */
    if ((uint64_t)s->pos + n_tokens > s->n_ctx) {
        say(s->error, sizeof s->error, "%s: prefill of %u tokens at position %u passes the context of %u",
            s->backend->name, n_tokens, s->pos, s->n_ctx);
        return FB_ERR_CONTEXT_FULL;
    }
    for (uint32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= s->n_vocab) {
            say(s->error, sizeof s->error, "%s: prefill: token %d at index %u is outside the vocabulary of %u",
                s->backend->name, tokens[i], i, s->n_vocab);
            return FB_ERR_INVALID_ARGUMENT;
        }
    PyGILState_STATE gil = py.PyGILState_Ensure();
    PyObject *toks = py.PyMemoryView_FromMemory((char *)(uintptr_t)tokens, (Py_ssize_t)n_tokens * 4, PyBUF_READ);
    PyObject *want = py.PyLong_FromLong((long)flags);
    size_t n_floats = (size_t)(flags == FB_LOGITS_ALL ? n_tokens : 1) * s->n_vocab;
    PyObject *out = logits_view(flags == FB_LOGITS_NONE ? NULL : logits, n_floats);
    PyObject *r = toks && want && out ? py.PyObject_CallFunctionObjArgs(s->prefill, toks, want, out, NULL) : NULL;
    fb_status st = step_result(s, "prefill", r, next_token);
    release_view(toks), release_view(out), py.Py_DecRef(want);
    py.PyGILState_Release(gil);
    if (st == FB_OK) s->pos += n_tokens;
    return st;
}

static fb_status bridge_decode(fb_session *s, int32_t token, float *logits, int32_t *next_token) {
    if (!s) return FB_ERR_INVALID_ARGUMENT;
    s->error[0] = 0;
    if (!next_token || token < 0 || (uint32_t)token >= s->n_vocab) {
        say(s->error, sizeof s->error, "%s: decode: token %d is outside the vocabulary of %u (or next_token is NULL)",
            s->backend->name, token, s->n_vocab);
        return FB_ERR_INVALID_ARGUMENT;
    }
    if (s->pos >= s->n_ctx) {
        say(s->error, sizeof s->error, "%s: decode at position %u passes the context of %u", s->backend->name, s->pos,
            s->n_ctx);
        return FB_ERR_CONTEXT_FULL;
    }
    PyGILState_STATE gil = py.PyGILState_Ensure();
    PyObject *tok = py.PyLong_FromLong(token), *out = logits_view(logits, s->n_vocab);
    PyObject *r = tok && out ? py.PyObject_CallFunctionObjArgs(s->decode, tok, out, NULL) : NULL;
    fb_status st = step_result(s, "decode", r, next_token);
    py.Py_DecRef(tok), release_view(out);
    py.PyGILState_Release(gil);
    if (st == FB_OK) s->pos++;
    return st;
}

static fb_status bridge_reset(fb_session *s) {
    if (!s) return FB_ERR_INVALID_ARGUMENT;
    s->error[0] = 0;
    PyGILState_STATE gil = py.PyGILState_Ensure();
    PyObject *r = py.PyObject_CallFunctionObjArgs(s->reset, NULL);
    fb_status st = r ? FB_OK : take_error(s->backend->name, "reset", s->error, sizeof s->error);
    py.Py_DecRef(r);
    py.PyGILState_Release(gil);
    if (st == FB_OK) s->pos = 0;
    return st;
}

/* Item i of a tuple as an integer / into a string buffer. GIL held. */
static long long item_int(PyObject *tuple, Py_ssize_t i) {
    PyObject *o = py.PyTuple_GetItem(tuple, i);
    return o ? py.PyLong_AsLongLong(o) : -1;
}

static void item_str(PyObject *tuple, Py_ssize_t i, char *out, size_t size) {
    PyObject *o = py.PyTuple_GetItem(tuple, i);
    PyObject *bytes = o ? py.PyUnicode_AsUTF8String(o) : NULL;
    const char *text = bytes ? py.PyBytes_AsString(bytes) : NULL;
    snprintf(out, size, "%s", text ? text : "");
    py.Py_DecRef(bytes);
}

static fb_status bridge_memory(fb_session *s, fb_memory_stats *out) {
    if (!s || !out) return FB_ERR_INVALID_ARGUMENT;
    s->error[0] = 0;
    PyGILState_STATE gil = py.PyGILState_Ensure();
    PyObject *r = py.PyObject_CallFunctionObjArgs(s->memory, s->object, NULL);
    fb_status st = FB_OK;
    if (!r || py.PyTuple_Size(r) != 3) {
        if (r) py.PyErr_Clear(), py.Py_DecRef(r), r = NULL;
        st = py.PyErr_Occurred() ? take_error(s->backend->name, "memory", s->error, sizeof s->error) : FB_ERR_INTERNAL;
        if (!s->error[0])
            say(s->error, sizeof s->error, "%s: memory: not a (device, peak, host) tuple", s->backend->name);
    } else {
        uint32_t size = out->struct_size;
        fb_memory_stats m = {.struct_size = size};
        m.device_bytes = (uint64_t)item_int(r, 0);
        m.device_peak_bytes = (uint64_t)item_int(r, 1);
        m.host_bytes = (uint64_t)item_int(r, 2);
        memcpy(out, &m, size < sizeof m ? size : sizeof m);
        out->struct_size = size;
        if (py.PyErr_Occurred()) st = take_error(s->backend->name, "memory", s->error, sizeof s->error);
    }
    py.Py_DecRef(r);
    py.PyGILState_Release(gil);
    return st;
}

static fb_status bridge_effective(fb_session *s, fb_effective_settings *out) {
    if (!s || !out) return FB_ERR_INVALID_ARGUMENT;
    s->error[0] = 0;
    PyGILState_STATE gil = py.PyGILState_Ensure();
    PyObject *r = py.PyObject_CallFunctionObjArgs(s->effective, s->object, NULL);
    fb_status st = FB_OK;
    if (!r) st = take_error(s->backend->name, "effective_settings", s->error, sizeof s->error);
    else if (py.PyTuple_Size(r) != 9) {
        py.PyErr_Clear();
        say(s->error, sizeof s->error, "%s: effective_settings: the helper returned no 9-tuple", s->backend->name);
        st = FB_ERR_INTERNAL;
    } else {
        uint32_t size = out->struct_size;
        fb_effective_settings e;
        memset(&e, 0, sizeof e);
        char word[16];
        item_str(r, 0, word, sizeof word);
        e.weight_precision = precision_from(word);
        item_str(r, 1, word, sizeof word);
        e.accumulate_precision = precision_from(word);
        e.jit = item_int(r, 2) != 0;
        e.graphs = item_int(r, 3) != 0;
        e.threads = (int32_t)item_int(r, 4);
        e.kernel_cache_hit = (int32_t)item_int(r, 5);
        item_str(r, 6, e.device, sizeof e.device);
        item_str(r, 7, e.notes, sizeof e.notes);
        item_str(r, 8, e.options, sizeof e.options);
        if (py.PyErr_Occurred()) st = take_error(s->backend->name, "effective_settings", s->error, sizeof s->error);
        e.struct_size = size;
        memcpy(out, &e, size < sizeof e ? size : sizeof e);
    }
    py.Py_DecRef(r);
    py.PyGILState_Release(gil);
    return st;
}

static const char *bridge_last_error(fb_session *s) { return s ? s->error : ""; }

static void bridge_destroy(fb_session *s) {
    if (!s) return;
    PyGILState_STATE gil = py.PyGILState_Ensure();
    session_free_objects(s);
    py.PyGILState_Release(gil);
    free(s);
}

/* ------------------------------------------------------------------------ */
/* probe and options: per backend                                           */

static fb_status bridge_probe(const pyb_backend *b, const fb_host *host, fb_probe_result *out) {
    (void)host;
    if (!out) return FB_ERR_INVALID_ARGUMENT;
    uint32_t size = out->struct_size;
    fb_probe_result r;
    memset(&r, 0, sizeof r);
    r.struct_size = size;
    char why[512];
    if (ensure_python(NULL, why, sizeof why)) {
        say(r.reason, sizeof r.reason, "%s", why);
    } else {
        PyGILState_STATE gil = py.PyGILState_Ensure();
        PyObject *probe = py.PyObject_GetAttrString(py.helper, "_probe");
        PyObject *path = py.PyUnicode_DecodeFSDefault(b->path), *name = py.PyUnicode_FromString(b->name);
        PyObject *res = probe && path && name ? py.PyObject_CallFunctionObjArgs(probe, path, name, NULL) : NULL;
        if (res && py.PyTuple_Size(res) == 3) {
            r.available = item_int(res, 0) != 0;
            item_str(res, 1, r.device, sizeof r.device);
            item_str(res, 2, r.reason, sizeof r.reason);
        } else {
            char msg[256];
            take_error(b->name, "probe", msg, sizeof msg);
            snprintf(r.reason, sizeof r.reason, "%s", msg);
        }
        if (py.PyErr_Occurred()) py.PyErr_Clear();
        py.Py_DecRef(res), py.Py_DecRef(probe), py.Py_DecRef(path), py.Py_DecRef(name);
        py.PyGILState_Release(gil);
    }
    if (r.available && !r.device[0]) snprintf(r.device, sizeof r.device, "Python %s", py.version);
    if (!r.available && !r.reason[0]) snprintf(r.reason, sizeof r.reason, "%s says it is unavailable", b->name);
    memcpy(out, &r, size < sizeof r ? size : sizeof r);
    return FB_OK;
}

/* `python` (the interpreter) for every backend; the module's OPTIONS. The
 * values of a module's options are vetted by the module at create. */
static fb_status bridge_check_option(const pyb_backend *b, const fb_host *host, const char *key, const char *value,
                                     char *msg, size_t msg_size) {
    (void)host;
    if (!key || !value) {
        say(msg, msg_size, "%s: an option with a NULL key or value", b->name);
        return FB_ERR_INVALID_ARGUMENT;
    }
    if (strcmp(key, "python") == 0) {
        char exe[PATH_MAX];
        if (!value[0] || resolve_python(value, exe, sizeof exe, msg, msg_size)) {
            if (!value[0]) say(msg, msg_size, "%s: option python is empty (name an executable or a venv)", b->name);
            return FB_ERR_UNSUPPORTED;
        }
        return FB_OK;
    }
    char names[sizeof b->options], *save = NULL;
    snprintf(names, sizeof names, "%s", b->options);
    for (char *w = strtok_r(names, " ,", &save); w; w = strtok_r(NULL, " ,", &save))
        if (strcmp(w, key) == 0) return FB_OK;
    say(msg, msg_size, "%s: unknown option '%s' (known: python%s%s)", b->name, key, b->options[0] ? ", " : "",
        b->options);
    return FB_ERR_INVALID_ARGUMENT;
}

/* probe, create and check_option carry no session, so each published table
 * gets its own small functions that know their backend: one set per slot. */
#define PYB_SLOT(i)                                                                                                 \
    static fb_status probe_##i(const fb_host *h, fb_probe_result *o) { return bridge_probe(&g_backends[i], h, o); } \
    static fb_status create_##i(const fb_host *h, const fb_model_view *m, const fb_settings *st, fb_session **o,    \
                                char *msg, size_t n) {                                                              \
        return bridge_create(&g_backends[i], h, m, st, o, msg, n);                                                  \
    }                                                                                                               \
    static fb_status option_##i(const fb_host *h, const char *k, const char *v, char *msg, size_t n) {              \
        return bridge_check_option(&g_backends[i], h, k, v, msg, n);                                                \
    }
// clang-format off
#define PYB_SLOTS8(a) \
    PYB_SLOT(a##0) PYB_SLOT(a##1) PYB_SLOT(a##2) PYB_SLOT(a##3) PYB_SLOT(a##4) PYB_SLOT(a##5) PYB_SLOT(a##6) PYB_SLOT(a##7)
PYB_SLOT(0) PYB_SLOT(1) PYB_SLOT(2) PYB_SLOT(3) PYB_SLOT(4) PYB_SLOT(5) PYB_SLOT(6) PYB_SLOT(7) PYB_SLOT(8) PYB_SLOT(9)
PYB_SLOTS8(1) PYB_SLOT(18) PYB_SLOT(19) PYB_SLOTS8(2) PYB_SLOT(28) PYB_SLOT(29) PYB_SLOT(30) PYB_SLOT(31)

#define PYB_ROW(i) {probe_##i, create_##i, option_##i},
#define PYB_ROWS8(a) \
    PYB_ROW(a##0) PYB_ROW(a##1) PYB_ROW(a##2) PYB_ROW(a##3) PYB_ROW(a##4) PYB_ROW(a##5) PYB_ROW(a##6) PYB_ROW(a##7)
static const struct {
    fb_status (*probe)(const fb_host *, fb_probe_result *);
    fb_status (*create)(const fb_host *, const fb_model_view *, const fb_settings *, fb_session **, char *, size_t);
    fb_status (*check_option)(const fb_host *, const char *, const char *, char *, size_t);
} g_slots[PYB_MAX_BACKENDS] = {
    PYB_ROW(0) PYB_ROW(1) PYB_ROW(2) PYB_ROW(3) PYB_ROW(4) PYB_ROW(5) PYB_ROW(6) PYB_ROW(7) PYB_ROW(8) PYB_ROW(9)
    PYB_ROWS8(1) PYB_ROW(18) PYB_ROW(19) PYB_ROWS8(2) PYB_ROW(28) PYB_ROW(29) PYB_ROW(30) PYB_ROW(31)};
// clang-format on

static void fill_table(pyb_backend *b, uint32_t slot) {
    uint32_t caps = b->table.capabilities;
    b->table = (fb_plugin){
        .abi_major = FB_ABI_MAJOR,
        .abi_minor = FB_ABI_MINOR,
        .struct_size = sizeof(fb_plugin),
        .capabilities = caps,
        .name = b->name,
        .version = PYB_VERSION,
        .description = b->description,
        .probe = g_slots[slot].probe,
        .create = g_slots[slot].create,
        .prefill = bridge_prefill,
        .decode = bridge_decode,
        .reset = bridge_reset,
        .memory = bridge_memory,
        .effective_settings = bridge_effective,
        .last_error = bridge_last_error,
        .destroy = bridge_destroy,
        .check_option = g_slots[slot].check_option,
    };
}

/* ------------------------------------------------------------------------ */
/* The factory                                                               */

static uint32_t factory_count(const fb_host *host) {
    (void)host;
    scan_backends();
    return g_n_backends;
}

static const fb_plugin *factory_get(const fb_host *host, uint32_t index) {
    (void)host;
    scan_backends();
    return index < g_n_backends ? &g_backends[index].table : NULL;
}

static fb_status container_probe(const fb_host *host, fb_probe_result *out) {
    (void)host;
    if (!out) return FB_ERR_INVALID_ARGUMENT;
    uint32_t size = out->struct_size;
    fb_probe_result r = {.struct_size = size};
    snprintf(r.reason, sizeof r.reason,
             "no Python backend modules found (python/backends next to python.so, "
             "or folders in FAIRBENCH_PYTHON_BACKENDS)");
    memcpy(out, &r, size < sizeof r ? size : sizeof r);
    return FB_OK;
}

static fb_status container_create(const fb_host *host, const fb_model_view *model, const fb_settings *settings,
                                  fb_session **out, char *msg, size_t msg_size) {
    (void)host, (void)model, (void)settings;
    if (out) *out = NULL;
    say(msg, msg_size, "python: no Python backend modules found; name one by its module's name");
    return FB_ERR_UNAVAILABLE;
}

/* The container: listed under "python" only when it publishes nothing. */
static const fb_plugin g_container = {
    .abi_major = FB_ABI_MAJOR,
    .abi_minor = FB_ABI_MINOR,
    .struct_size = sizeof(fb_plugin),
    .capabilities = FB_CAP_CPU | FB_CAP_PRECISION_F32,
    .name = "python",
    .version = PYB_VERSION,
    .description = "Python backends (torch, tinygrad, numpy_ref, ...) through embedded CPython",
    .probe = container_probe,
    .create = container_create,
    .prefill = bridge_prefill,
    .decode = bridge_decode,
    .reset = bridge_reset,
    .memory = bridge_memory,
    .effective_settings = bridge_effective,
    .last_error = bridge_last_error,
    .destroy = bridge_destroy,
    .factory_count = factory_count,
    .factory_get = factory_get,
};

FB_PLUGIN_EXPORT const fb_plugin *fb_plugin_entry(void) { return &g_container; }
