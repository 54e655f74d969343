/* promptline_plugin.h - the C ABI of a PromptLine library plugin (`entry: {library: x.so}`).
 *
 * ABI version 1. The library is dlopen'ed only inside a sandboxed child process (never in
 * the host); the child serves it over the same MCP bridge as every other process plugin.
 * Every function is called from one thread at a time. All text is UTF-8 JSON.
 *
 *   int   promptline_abi(void);
 *       Returns PROMPTLINE_PLUGIN_ABI (1). Any other value: the library is refused.
 *   char *promptline_describe(void);
 *       {"name": "...", "version": "..."}
 *   char *promptline_list_tools(void);
 *       {"tools": [{"name": "...", "description": "...", "inputSchema": {...JSON Schema...}}]}
 *   char *promptline_call_tool(const char *name, const char *arguments_json);
 *       Arguments are already checked against the tool's inputSchema. Returns a result:
 *       {"ok": true, "content": "...", "data": <any JSON, optional>}
 *       {"ok": false, "content": "...", "error": {"kind": "failed", "message": "..."}}
 *   void  promptline_free(char *text);
 *       Frees a string returned by the three functions above (each is freed exactly once).
 *
 * A NULL return is an error result. A crash (segfault, abort) kills only the child: the call
 * becomes an error result and the next call starts a new child.
 */
#ifndef PROMPTLINE_PLUGIN_H
#define PROMPTLINE_PLUGIN_H

#define PROMPTLINE_PLUGIN_ABI 1

int promptline_abi(void);
char *promptline_describe(void);
char *promptline_list_tools(void);
char *promptline_call_tool(const char *name, const char *arguments_json);
void promptline_free(char *text);

#endif
