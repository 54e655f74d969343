"""The CEL cost budget, checked once per expression at compile time."""

# Longest accepted expression source, in characters (a combined program for one
# (plugin, action) of ~100 rules stays well below it).
MAX_EXPRESSION_CHARS = 32_768
# Most AST nodes (operators, calls, selections, literals, identifiers) in one expression.
MAX_AST_NODES = 4_000
# Deepest parse-tree nesting; cel-python evaluates recursively (~3 Python frames per level)
# and must stay under the default recursion limit of 1000 with room for the caller's frames.
MAX_PARSE_DEPTH = 200
# Most comprehension macros (all/exists/exists_one/map/filter) nested inside each other;
# each level multiplies evaluation cost by the size of a list.
MAX_COMPREHENSION_DEPTH = 2
# Longest string or bytes literal, in characters of source.
MAX_STRING_LITERAL_CHARS = 4_096
# Longest regular expression given to `matches`, in characters.
MAX_REGEX_CHARS = 256

