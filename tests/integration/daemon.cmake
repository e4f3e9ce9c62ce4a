# Integration tests of the coverd process (tests/integration/daemon_test.py): the real
# daemon on a temporary state directory, its real socket, real signals, and for the gpsd
# case a real gpsd started by gpsfake on a free loopback port. Python standard library only.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

set(_daemon_cases
  ipc_errors ipc_limits ipc_session deadline_timer restart_sigterm restart_kill9 sighup check_config garbage_db
  unreadable_state_dir socket_in_use replay gpsd gpsd_absent
  app_time ipc_retry ipc_bad_fields ipc_too_many_jobs)
foreach(_case IN LISTS _daemon_cases)
  add_test(NAME integration.daemon.${_case}
    COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/daemon_test.py
      --coverd $<TARGET_FILE:coverd> --data ${PROJECT_SOURCE_DIR}/tests/data --case ${_case})
  set_tests_properties(integration.daemon.${_case} PROPERTIES
    LABELS "integration" SKIP_RETURN_CODE 77 TIMEOUT 180)
endforeach()
# gpsd listens on a port of its own choosing per run, but gpsfake drives a pseudo-terminal
# and a control socket under /tmp; running two at once is safe, yet keep it apart from the
# other socket-heavy cases to keep CI's two cores calm.
set_tests_properties(integration.daemon.gpsd PROPERTIES RUN_SERIAL TRUE)

# A database the daemon may not write stops the start, with the reason (issue 7, item 3).
add_test(NAME integration.daemon.readonly_db
  COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/readonly_db_test.sh $<TARGET_FILE:coverd>
    ${PROJECT_SOURCE_DIR}/tests/scenarios/rev2/r2-04-stray-pickup.jsonl
    ${PROJECT_SOURCE_DIR}/tests/scenarios/test.conf)
set_tests_properties(integration.daemon.readonly_db PROPERTIES LABELS "integration" TIMEOUT 120)
