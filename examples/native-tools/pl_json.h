/* pl_json.h - the PromptLine wasm plugin protocol for C, in one header.
 *
 * One JSON request arrives on stdin, one JSON response leaves on stdout:
 *   {"method": "tools/list"}                      -> {"tools": [{"name", "description", "inputSchema"}]}
 *   {"method": "tools/call", "params": {"name": N, "arguments": {...}}}
 *                                                 -> {"ok": true, "content": "..."}
 *                                                 |  {"ok": false, "content": "...", "error": {"kind": "failed", "message": "..."}}
 *
 * A minimal JSON reader (enough to find keys in objects and decode strings and integers)
 * and writer (string escaping). Copy this file next to your plugin's source.
 */
#ifndef PL_JSON_H
#define PL_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PL_MAX_REQUEST (4 * 1024 * 1024)

/* Read all of stdin into a NUL-terminated buffer (NULL if too large or unreadable). */
static char *pl_read_request(void) {
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (len + 1 >= cap) {
            if (cap >= PL_MAX_REQUEST) { free(buf); return NULL; }
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); return NULL; }
            buf = nb;
        }
        ssize_t n = read(0, buf + len, cap - len - 1);
        if (n < 0) { free(buf); return NULL; }
        if (n == 0) break;
        len += (size_t)n;
    }
    buf[len] = 0;
    return buf;
}

static const char *pl_ws(const char *p) {
    while (p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Skip one JSON value; return the character after it, or NULL if malformed. */
static const char *pl_skip(const char *p) {
    p = pl_ws(p);
    if (!p) return NULL;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++)
            if (*p == '\\' && !*++p) return NULL;
        return *p == '"' ? p + 1 : NULL;
    }
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = pl_ws(p + 1);
        if (*p == close) return p + 1;
        for (;;) {
            if (close == '}') {
                p = pl_skip(p);              /* key */
                p = pl_ws(p);
                if (!p || *p != ':') return NULL;
                p++;
            }
            p = pl_ws(pl_skip(p));
            if (!p) return NULL;
            if (*p == ',') { p++; continue; }
            return *p == close ? p + 1 : NULL;
        }
    }
    if (*p == '-' || (*p >= '0' && *p <= '9') || *p == 't' || *p == 'f' || *p == 'n') {
        while (*p && strchr("+-.0123456789eEtruefalsn", *p)) p++;
        return p;
    }
    return NULL;
}

/* Decode the JSON string at p into out (at most cap-1 bytes); return its length or -1. */
static long pl_str(const char *p, char *out, size_t cap) {
    p = pl_ws(p);
    if (!p || *p != '"' || cap == 0) return -1;
    size_t n = 0;
    for (p++; *p != '"'; p++) {
        unsigned c = (unsigned char)*p;
        if (!c) return -1;
        if (c == '\\') {
            p++;
            switch (*p) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 1; i <= 4; i++) {
                    char h = p[i];
                    v = v * 16 + (h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                  : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 0);
                }
                p += 4;
                if (v >= 0x80) {   /* BMP code point as UTF-8 (surrogates pass through) */
                    char tmp[3]; int k = 0;
                    if (v < 0x800) { tmp[k++] = 0xC0 | (v >> 6); }
                    else { tmp[k++] = 0xE0 | (v >> 12); tmp[k++] = 0x80 | ((v >> 6) & 0x3F); }
                    for (int i = 0; i < k; i++) { if (n + 1 >= cap) return -1; out[n++] = tmp[i]; }
                    c = 0x80 | (v & 0x3F);
                } else c = v;
                break;
            }
            case 0: return -1;
            default: c = (unsigned char)*p;
            }
        }
        if (n + 1 >= cap) return -1;
        out[n++] = (char)c;
    }
    out[n] = 0;
    return (long)n;
}

/* The value of key in the object at obj, or NULL. */
static const char *pl_get(const char *obj, const char *key) {
    static char name[256];
    obj = pl_ws(obj);
    if (!obj || *obj != '{') return NULL;
    const char *p = pl_ws(obj + 1);
    if (*p == '}') return NULL;
    for (;;) {
        if (pl_str(p, name, sizeof name) < 0) return NULL;
        p = pl_ws(pl_skip(p));
        if (!p || *p != ':') return NULL;
        const char *value = pl_ws(p + 1);
        if (strcmp(name, key) == 0) return value;
        p = pl_ws(pl_skip(value));
        if (!p || *p != ',') return NULL;
        p = pl_ws(p + 1);
    }
}

static long pl_int(const char *p, long fallback) {
    p = pl_ws(p);
    if (!p || !(*p == '-' || (*p >= '0' && *p <= '9'))) return fallback;
    return strtol(p, NULL, 10);
}

/* Write s as a JSON string to stdout. */
static void pl_put_str(const char *s, size_t len) {
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { putchar('\\'); putchar(c); }
        else if (c == '\n') fputs("\\n", stdout);
        else if (c == '\t') fputs("\\t", stdout);
        else if (c == '\r') fputs("\\r", stdout);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static int pl_ok(const char *content, size_t len) {
    fputs("{\"ok\":true,\"content\":", stdout);
    pl_put_str(content, len);
    fputs("}\n", stdout);
    return 0;
}

static int pl_fail(const char *message) {
    fputs("{\"ok\":false,\"content\":", stdout);
    pl_put_str(message, strlen(message));
    fputs(",\"error\":{\"kind\":\"failed\",\"message\":", stdout);
    pl_put_str(message, strlen(message));
    fputs("}}\n", stdout);
    return 0;
}

#endif
