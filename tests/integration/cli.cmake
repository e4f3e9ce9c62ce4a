# coverctl tests: the real coverctl against a real state directory (read-only, no
# daemon) built by running tests/integration/cli/shift.jsonl through the real engine and
# store (cli_fixture), and against a running coverd over its socket (cli_daemon_test.sh).
set(_cli_dir ${CMAKE_CURRENT_LIST_DIR}/cli)
set(_cli_work ${CMAKE_CURRENT_BINARY_DIR}/cli-work)

add_executable(cli_fixture ${_cli_dir}/cli_fixture.c)
target_link_libraries(cli_fixture PRIVATE coverd_flags coverd_daemon)

add_test(NAME cli.setup
  COMMAND ${_cli_dir}/cli_test.sh setup ${_cli_work} $<TARGET_FILE:coverctl>
          $<TARGET_FILE:cli_fixture> ${_cli_dir}/shift.jsonl)
set_tests_properties(cli.setup PROPERTIES LABELS "integration" FIXTURES_SETUP cli_state)

foreach(_c sessions_table sessions_json sessions_csv activations_table activations_json
           activations_csv explain explain_unknown status health_no_daemon no_state
           event_no_daemon usage unanswering_daemon)
  add_test(NAME cli.${_c}
    COMMAND ${_cli_dir}/cli_test.sh ${_c} ${_cli_work} $<TARGET_FILE:coverctl>)
  set_tests_properties(cli.${_c} PROPERTIES LABELS "integration" FIXTURES_REQUIRED cli_state)
endforeach()

# Against a running coverd: events over the socket, queries, health, and the same records
# from the daemon and read-only from its database.
add_test(NAME cli.daemon
  COMMAND ${_cli_dir}/cli_daemon_test.sh $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl>
          ${CMAKE_CURRENT_BINARY_DIR}/cli-daemon-work)
set_tests_properties(cli.daemon PROPERTIES LABELS "integration" TIMEOUT 120)

# The worked examples of docs/explain.md are what coverctl prints for those replays.
add_test(NAME cli.explain_doc
  COMMAND ${_cli_dir}/explain_doc_test.sh $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl>
          ${CMAKE_SOURCE_DIR} ${CMAKE_CURRENT_BINARY_DIR}/cli-explain-doc)
set_tests_properties(cli.explain_doc PROPERTIES LABELS "integration" TIMEOUT 120)

# shift.jsonl is exactly what make_shift.py writes (the file says how it was made).
add_test(NAME cli.scenario_regenerates
  COMMAND sh -c "python3 '${_cli_dir}/make_shift.py' | diff -u '${_cli_dir}/shift.jsonl' -")
set_tests_properties(cli.scenario_regenerates PROPERTIES LABELS "integration")
