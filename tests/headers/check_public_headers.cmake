# Fails when a public header includes an internal or an implementation-only
# header (LMDB, Boost.Asio/Beast, "core/…", "actors/…", "web/…") or names an
# LMDB type.
file(GLOB_RECURSE headers ${INCLUDE_DIR}/derive/*.hpp)
set(bad)
foreach(h IN LISTS headers)
  file(STRINGS ${h} lines)
  foreach(line IN LISTS lines)
    if(line MATCHES "^#include [<\"](lmdb\\.h|boost/|caf/detail/|core/|actors/|web/)"
       OR line MATCHES "#include \""
       OR line MATCHES "MDB_[a-z]+")
      list(APPEND bad "${h}: ${line}")
    endif()
  endforeach()
endforeach()
if(bad)
  list(JOIN bad "\n" msg)
  message(FATAL_ERROR "public headers must use <derive/...> and public dependencies only:\n${msg}")
endif()
list(LENGTH headers n)
message(STATUS "${n} public headers checked")
