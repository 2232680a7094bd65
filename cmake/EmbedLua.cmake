# Turn Lua sources into a C file holding them as byte arrays, so the
# module and the binary carry their Lua policy code with no files to
# install.  Called as a script:
#   cmake -DOUT=file.c -DNAMES="a|b" -DFILES="a.lua|b.lua" -P EmbedLua.cmake
string(REPLACE "|" ";" NAMES "${NAMES}")
string(REPLACE "|" ";" FILES "${FILES}")
set(body "/* Generated from the Lua sources by cmake/EmbedLua.cmake. */\n")
string(APPEND body "#include <stddef.h>\n\n")
set(table "")
set(i 0)
foreach(f IN LISTS FILES)
  list(GET NAMES ${i} name)
  file(READ ${f} hex HEX)
  string(LENGTH "${hex}" hexlen)
  math(EXPR len "${hexlen} / 2")
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n" bytes "${bytes}")
  string(APPEND body "static const char lua_${i}[] = {\n${bytes}0};\n")
  string(APPEND table "  {\"${name}\", lua_${i}, ${len}},\n")
  math(EXPR i "${i} + 1")
endforeach()
string(APPEND body "\nconst struct lb_embedded {\n  const char *name;\n"
  "  const char *src;\n  size_t len;\n} lb_embedded[] = {\n${table}"
  "  {NULL, NULL, 0}};\n")
file(WRITE ${OUT}.tmp "${body}")
file(RENAME ${OUT}.tmp ${OUT})
