# The installed library is usable: headers, shared and static libraries,
# libsync.pc, the CMake package, and the Lua module for stock lua5.4; the
# binary comes with its man page.
. "$TESTS_DIR/lib.sh"
need cmake pkg-config cc lua5.4
: "${BUILD_DIR:?}"

prefix="$work/prefix"
cmake --install "$BUILD_DIR" --prefix "$prefix" >/dev/null
[ -f "$prefix/include/libsync/libsync.h" ] || fail "headers not installed"
[ -x "$prefix/bin/syncplan" ] || fail "syncplan not installed"
man1=$(find "$prefix" -path '*/man1/syncplan.1')
[ -n "$man1" ] || fail "man page syncplan.1 not installed"
cmp -s "$man1" "$TESTS_DIR/../syncplan.1" || fail "installed man page differs from syncplan.1"
pc=$(find "$prefix" -name libsync.pc)
[ -n "$pc" ] || fail "libsync.pc not installed"
libdir=$(dirname "$(dirname "$pc")")
[ -f "$libdir/libsync.a" ] && [ -e "$libdir/libsync.so" ] || fail "libraries missing"
# Only public symbols are exported from the shared library.
if nm -D --defined-only "$libdir/libsync.so" | awk '{print $3}' | grep -v '^lsync_[a-z]' | grep -q .; then
  fail "libsync.so exports non-API symbols"
fi

"$MKTREE" sample "$work/src" -n 500
touch "$work/src/skip.tmp"

# pkg-config, shared
export PKG_CONFIG_PATH="$(dirname "$pc")"
cc -std=c11 -Wall -Wextra -Werror ${SANITIZE_CFLAGS:-} "$TESTS_DIR/embed/chunk_example.c" \
  $(pkg-config --cflags --libs libsync) -Wl,-rpath,"$libdir" -o "$work/ex"
"$work/ex" "$work/src" 3 >"$work/out"
grep -q '^libsync [0-9.]*: [0-9]* entries in 3 chunks$' "$work/out" ||
  fail "pkg-config example: $(cat "$work/out")"
entries=$(find "$work/src" -mindepth 1 ! -name '*.tmp' | wc -l)
grep -q ": $entries entries" "$work/out" || fail "example saw the wrong entry count"
# pkg-config, static: the archive, then its private dependencies
# (libuv, SQLite, pthread, libm) as pkg-config --static lists them.
deps=$(pkg-config --libs --static libsync | sed -e 's/-L[^ ]*//g' -e 's/-lsync\b//')
# shellcheck disable=SC2086
cc -std=c11 ${SANITIZE_CFLAGS:-} "$TESTS_DIR/embed/chunk_example.c" \
  $(pkg-config --cflags libsync) "$libdir/libsync.a" $deps \
  -o "$work/ex-static"
"$work/ex-static" "$work/src" 2 | grep -q 'in 2 chunks' || fail "static example"

# CMake package
mkdir "$work/consumer"
cat >"$work/consumer/CMakeLists.txt" <<CMK
cmake_minimum_required(VERSION 3.16)
project(consumer C)
find_package(libsync 0.1 REQUIRED)
add_executable(ex "$TESTS_DIR/embed/chunk_example.c")
target_link_libraries(ex PRIVATE libsync::shared)
CMK
cmake -S "$work/consumer" -B "$work/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_FLAGS="${SANITIZE_CFLAGS:-}" >/dev/null
cmake --build "$work/consumer/build" >/dev/null
"$work/consumer/build/ex" "$work/src" 5 | grep -q 'in 5 chunks' || fail "CMake package example"

# Lua module from stock lua5.4, from the installed path only.
mod=$(find "$prefix" -name syncplan.so)
[ -n "$mod" ] || fail "Lua module not installed"
LUA_CPATH="$(dirname "$mod")/?.so" LD_PRELOAD="${SANITIZE_PRELOAD:-}" lua5.4 -e "
  local sp = require 'syncplan'
  local chunks = assert(sp.chunk('$work/src', { count = 2 }))
  assert(#chunks == 2, 'two chunks')
  print('lua ok ' .. sp.version)" | grep -q '^lua ok' || fail "installed Lua module"
# A whole plan run from stock lua5.4, as README shows.  Under the
# sanitizers lua5.4 runs with their runtime preloaded; the rsyncs it
# starts must not inherit that, so they run through a wrapper that drops
# it.
need rsync
mkdir -p "$work/bin"
printf '#!/bin/sh\nunset LD_PRELOAD\nexec %s "$@"\n' "$(command -v rsync)" >"$work/bin/rsync"
chmod +x "$work/bin/rsync"
cat >"$work/plan.lua" <<EOF
return { source = "$work/src/", dest = "$work/dst/", workers = 2,
  exclude = { "*.tmp" } }
EOF
PATH="$work/bin:$PATH" SYNCPLAN_STATE_DIR="$work/state" LUA_CPATH="$(dirname "$mod")/?.so" \
  LD_PRELOAD="${SANITIZE_PRELOAD:-}" lua5.4 -e "
  require 'syncplan'
  local plan = require 'syncplan.plan'
  local runner = require 'syncplan.runner'
  local jobs = require 'syncplan.jobs'
  local cfg = plan.load('$work/plan.lua', { 'workers=3' })
  local code = runner.run_plan(cfg, {})
  local j = runner.open_journal({})
  local st = jobs.status(j, j:runs()[1].id)
  print('plan', code, st.state)" >"$work/lua.out" 2>"$work/lua.err" ||
  fail "plan from lua5.4: $(cat "$work/lua.err")"
grep -q "^plan	0	done$" "$work/lua.out" || fail "plan from lua5.4: $(cat "$work/lua.out")"
[ ! -e "$work/dst/skip.tmp" ] || fail "plan from lua5.4: the exclude was not applied"
changes=$(rsync -aHn --delete --exclude='*.tmp' --itemize-changes "$work/src/" "$work/dst/")
[ -z "$changes" ] || fail "plan from lua5.4: the copy differs: $(printf '%s' "$changes" | head -3)"
echo "install: ok"
