/* wordcount - a PromptLine tool plugin in C, compiled to WebAssembly (wasm32-wasi).
 *
 * Tools:
 *   count(text)       lines, words and characters of a text
 *   count_file(path)  the same for a file the plugin may read (see plugin.yaml)
 *
 * The host sends one JSON request on stdin and reads one JSON response from stdout
 * (see pl_json.h). Build with ./build.sh.
 */
#include <errno.h>
#include <fcntl.h>

#include "pl_json.h"

#define MAX_TEXT (1024 * 1024)
static char buf[MAX_TEXT];

static const char TOOLS[] =
    "{\"tools\":["
    "{\"name\":\"count\",\"description\":\"Count lines, words and characters of a text\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"]}},"
    "{\"name\":\"count_file\",\"description\":\"Count lines, words and characters of a file\","
    "\"inputSchema\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},\"required\":[\"path\"]}}"
    "]}\n";

static int report(const char *s, size_t n) {
    long lines = 0, words = 0, chars = 0;
    int in_word = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c & 0xC0) != 0x80) chars++;             /* count UTF-8 characters, not bytes */
        if (c == '\n') lines++;
        int space = c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
        if (!space && !in_word) words++;
        in_word = !space;
    }
    static char out[128];
    int k = snprintf(out, sizeof out, "%ld lines, %ld words, %ld characters", lines, words, chars);
    fputs("{\"ok\":true,\"content\":", stdout);
    pl_put_str(out, (size_t)k);
    printf(",\"data\":{\"lines\":%ld,\"words\":%ld,\"characters\":%ld}}\n", lines, words, chars);
    return 0;
}

static int count_file(const char *args) {
    static char path[4096];
    if (pl_str(pl_get(args, "path"), path, sizeof path) < 0) return pl_fail("path must be a string");
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(buf, sizeof buf, "cannot open %s: %s", path, strerror(errno));
        return pl_fail(buf);
    }
    size_t n = 0;
    ssize_t r;
    while (n < sizeof buf && (r = read(fd, buf + n, sizeof buf - n)) > 0) n += (size_t)r;
    close(fd);
    return report(buf, n);
}

int main(void) {
    char *req = pl_read_request();
    static char method[64], name[64];
    if (!req || pl_str(pl_get(req, "method"), method, sizeof method) < 0) return pl_fail("bad request"), 1;
    if (!strcmp(method, "tools/list")) return fputs(TOOLS, stdout), 0;
    const char *params = pl_get(req, "params");
    if (strcmp(method, "tools/call") || pl_str(pl_get(params, "name"), name, sizeof name) < 0)
        return pl_fail("unknown method"), 1;
    const char *args = pl_get(params, "arguments");
    if (!args) args = "{}";
    if (!strcmp(name, "count")) {
        long n = pl_str(pl_get(args, "text"), buf, sizeof buf);
        return n < 0 ? pl_fail("text must be a string (at most 1 MiB)") : report(buf, (size_t)n);
    }
    if (!strcmp(name, "count_file")) return count_file(args);
    return pl_fail("unknown tool");
}
