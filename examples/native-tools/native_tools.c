/* native-tools: a PromptLine library plugin in C (see promptline_plugin.h for the ABI).
 * Tools: add (two integers), upper (ASCII upper-case), read_file (first bytes of a file:
 * Landlock decides, not this code), crash (a deliberate segfault, for the tests). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_json.h"
#include "promptline_plugin.h"

typedef struct { char *p; size_t len, cap; } buf_t;

static void put(buf_t *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->len + n + 1 > cap) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) abort();
        b->p = np, b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void puts_(buf_t *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_str(buf_t *b, const char *s, size_t n) {
    puts_(b, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); puts_(b, esc); }
        else put(b, (const char *)&s[i], 1);
    }
    puts_(b, "\"");
}

static char *ok(const char *content, size_t n) {
    buf_t b = {0};
    puts_(&b, "{\"ok\": true, \"content\": ");
    put_json_str(&b, content, n);
    puts_(&b, "}");
    return b.p;
}

static char *fail(const char *message) {
    buf_t b = {0};
    puts_(&b, "{\"ok\": false, \"content\": ");
    put_json_str(&b, message, strlen(message));
    puts_(&b, ", \"error\": {\"kind\": \"failed\", \"message\": ");
    put_json_str(&b, message, strlen(message));
    puts_(&b, "}}");
    return b.p;
}

static char *copy(const char *s) {
    char *p = malloc(strlen(s) + 1);
    if (p) strcpy(p, s);
    return p;
}

int promptline_abi(void) { return PROMPTLINE_PLUGIN_ABI; }

char *promptline_describe(void) { return copy("{\"name\": \"native-tools\", \"version\": \"0.1.0\"}"); }

char *promptline_list_tools(void) {
    return copy("{\"tools\": ["
        "{\"name\": \"add\", \"description\": \"Add two integers\", \"inputSchema\": {\"type\": \"object\","
        " \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"integer\"}}, \"required\": [\"a\", \"b\"]}},"
        "{\"name\": \"upper\", \"description\": \"Upper-case ASCII text\", \"inputSchema\": {\"type\": \"object\","
        " \"properties\": {\"text\": {\"type\": \"string\", \"maxLength\": 65536}}, \"required\": [\"text\"]}},"
        "{\"name\": \"read_file\", \"description\": \"The first 200 bytes of a file\", \"inputSchema\": {\"type\": \"object\","
        " \"properties\": {\"path\": {\"type\": \"string\"}}, \"required\": [\"path\"]}},"
        "{\"name\": \"crash\", \"description\": \"Segfault on purpose\", \"inputSchema\": {\"type\": \"object\"}}"
        "]}");
}

char *promptline_call_tool(const char *name, const char *args) {
    if (!strcmp(name, "add")) {
        long a = pl_int(pl_get(args, "a"), 0), b = pl_int(pl_get(args, "b"), 0);
        char out[64];
        int n = snprintf(out, sizeof out, "%ld", a + b);
        return ok(out, (size_t)n);
    }
    if (!strcmp(name, "upper")) {
        static char text[65536 * 4 + 1];
        long n = pl_str(pl_get(args, "text"), text, sizeof text);
        if (n < 0) return fail("`text` must be a string");
        for (long i = 0; i < n; i++) text[i] = (char)toupper((unsigned char)text[i]);
        return ok(text, (size_t)n);
    }
    if (!strcmp(name, "read_file")) {
        char path[4096], data[201];
        if (pl_str(pl_get(args, "path"), path, sizeof path) < 0) return fail("`path` must be a string");
        FILE *fh = fopen(path, "rb");
        if (!fh) return fail("cannot open the file");
        size_t n = fread(data, 1, 200, fh);
        fclose(fh);
        return ok(data, n);
    }
    if (!strcmp(name, "crash")) {
        volatile int *nowhere = NULL;
        *nowhere = 42;
        return NULL;
    }
    return fail("unknown tool");
}

void promptline_free(char *text) { free(text); }
