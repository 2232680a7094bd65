# Strict warnings for our own targets; -Werror only when asked (CI), so a
# newer compiler's new warning never breaks a user's build.
add_library(syncplan_warnings INTERFACE)
target_compile_options(syncplan_warnings INTERFACE
  -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wformat=2 -Wvla -Wno-unused-parameter)
if(SYNCPLAN_WERROR)
  target_compile_options(syncplan_warnings INTERFACE -Werror)
endif()
# Every source may use POSIX/GNU interfaces (openat, pthread, getopt_long).
target_compile_definitions(syncplan_warnings INTERFACE _GNU_SOURCE)
