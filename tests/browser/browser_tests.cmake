# Browser tests: node + playwright-core driving Chromium against the docsearch
# binary. Included from tests/CMakeLists.txt. Each test exits 77 (skipped)
# when Chromium (/usr/bin/chromium, or $DERIVE_CHROMIUM) or
# tests/browser/node_modules is missing; scripts/test.sh installs both.
if(NOT TARGET docsearch)
  return()
endif()

find_program(DERIVE_NODE_EXECUTABLE NAMES node nodejs)
set(_derive_browser_dir ${CMAKE_CURRENT_LIST_DIR})

foreach(_test docsearch_e2e client auth tls cluster cutover)
  set(_name browser_${_test})
  if(DERIVE_NODE_EXECUTABLE)
    add_test(NAME ${_name}
      COMMAND ${DERIVE_NODE_EXECUTABLE} ${_derive_browser_dir}/${_test}.test.mjs
              $<TARGET_FILE:docsearch>
      WORKING_DIRECTORY ${_derive_browser_dir})
  else()
    add_test(NAME ${_name}
      COMMAND sh -c "echo 'SKIP: node is not installed'; exit 77")
  endif()
  # One browser test at a time: each starts Chromium and a server.
  set_tests_properties(${_name} PROPERTIES
    SKIP_RETURN_CODE 77
    TIMEOUT 300
    RESOURCE_LOCK derive_browser
    LABELS browser)
endforeach()

# Issue 13 end to end: a subject forgotten while a page shows it; the byte
# scan needs the derive tool.
if(TARGET derive_tool)
  if(DERIVE_NODE_EXECUTABLE)
    add_test(NAME browser_forget
      COMMAND ${DERIVE_NODE_EXECUTABLE} ${_derive_browser_dir}/forget.test.mjs
              $<TARGET_FILE:docsearch> $<TARGET_FILE:derive_tool>
      WORKING_DIRECTORY ${_derive_browser_dir})
  else()
    add_test(NAME browser_forget COMMAND sh -c "echo 'SKIP: node is not installed'; exit 77")
  endif()
  set_tests_properties(browser_forget PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 300 RESOURCE_LOCK derive_browser LABELS browser)
endif()

# The booking sample's page: two pages click the same seat at once.
if(TARGET booking)
  if(DERIVE_NODE_EXECUTABLE)
    add_test(NAME browser_booking
      COMMAND ${DERIVE_NODE_EXECUTABLE} ${_derive_browser_dir}/booking.test.mjs
              $<TARGET_FILE:booking>
      WORKING_DIRECTORY ${_derive_browser_dir})
  else()
    add_test(NAME browser_booking COMMAND sh -c "echo 'SKIP: node is not installed'; exit 77")
  endif()
  set_tests_properties(browser_booking PROPERTIES
    SKIP_RETURN_CODE 77 TIMEOUT 300 RESOURCE_LOCK derive_browser LABELS browser)
endif()
