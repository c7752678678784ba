# Installs the built project into a temporary prefix, then configures, builds
# and runs an application in another directory that uses find_package(Derive).
# Invoked by ctest: cmake -DBUILD_DIR=... -DAPP_DIR=... -DWORK_DIR=... -P this
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")

function(run)
  execute_process(COMMAND ${ARGV} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGV}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
# The `derive` tool is installed and runs (tools/derive).
run("${prefix}/bin/derive" --help)
file(COPY "${APP_DIR}/" DESTINATION "${WORK_DIR}/app")
run(${CMAKE_COMMAND} -S "${WORK_DIR}/app" -B "${WORK_DIR}/app-build" -G Ninja
    "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_BUILD_TYPE=RelWithDebInfo)
run(${CMAKE_COMMAND} --build "${WORK_DIR}/app-build")
run("${WORK_DIR}/app-build/outside_app" "${WORK_DIR}/data")
file(REMOVE_RECURSE "${WORK_DIR}")
