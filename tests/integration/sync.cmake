# Delivery integration tests (tests/integration/test_sync.py): the real coverd delivering
# to a real mosquitto (the shipped fleet configuration and ACL, on a free loopback port,
# with certificates made at test time by tools/pki.sh) and to the real coverd-ingest.
find_program(SYNC_MOSQUITTO mosquitto PATHS /usr/sbin /usr/local/sbin)
find_program(SYNC_OPENSSL openssl)
find_package(Python3 COMPONENTS Interpreter)

if(SYNC_MOSQUITTO AND SYNC_OPENSSL AND Python3_Interpreter_FOUND)
  foreach(_case shift mqtt311 replay_restart offline broker_restart cut_publish cut_ack kill9
          keepalive tls identity cmd bad_input retained_ack unsent_ack bound)
    add_test(NAME integration.sync.${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_sync.py ${_case}
        --workdir ${CMAKE_CURRENT_BINARY_DIR}/sync-${_case}
        --coverd $<TARGET_FILE:coverd> --coverctl $<TARGET_FILE:coverctl>
        --ingest $<TARGET_FILE:coverd-ingest> --probe $<TARGET_FILE:backend_probe>)
    set_tests_properties(integration.sync.${_case} PROPERTIES LABELS "integration" TIMEOUT 180)
  endforeach()
  # The keepalive case measures how soon a dead link is noticed: keep it off a loaded CPU.
  set_tests_properties(integration.sync.keepalive PROPERTIES RUN_SERIAL TRUE)
else()
  message(WARNING "mosquitto, openssl or python3 missing: delivery integration tests skipped")
endif()

# The delivery benchmark's baseline publisher (tools/bench-sync.sh); not a test.
add_executable(sync_raw_publish ${PROJECT_SOURCE_DIR}/tests/bench/sync_raw_publish.c)
target_link_libraries(sync_raw_publish PRIVATE coverd_flags coverd_mqtt_tls PkgConfig::MOSQUITTO
  PkgConfig::CJSON)
