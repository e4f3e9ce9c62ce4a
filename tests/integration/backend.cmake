# Backend integration tests: the shipped broker configuration and ACL, the reference
# ingest and the TLS checks, each against a real mosquitto on a free loopback port with
# certificates made at test time by tools/pki.sh (tests/integration/test_backend.py).
find_program(MOSQUITTO_BROKER mosquitto PATHS /usr/sbin /usr/local/sbin)
find_program(OPENSSL_CLI openssl)
find_package(Python3 COMPONENTS Interpreter)
find_package(Threads REQUIRED)

add_executable(backend_probe ${CMAKE_CURRENT_LIST_DIR}/backend_probe.c)
target_link_libraries(backend_probe PRIVATE coverd_flags coverd_sign PkgConfig::MOSQUITTO
  Threads::Threads)

if(MOSQUITTO_BROKER AND OPENSSL_CLI AND Python3_Interpreter_FOUND)
  foreach(_case acl ingest shared tls report)
    add_test(NAME integration.backend.${_case}
      COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_backend.py ${_case}
        --probe $<TARGET_FILE:backend_probe> --ingest $<TARGET_FILE:coverd-ingest>
        --mosquitto ${MOSQUITTO_BROKER} --workdir ${CMAKE_CURRENT_BINARY_DIR}/backend-${_case})
    set_tests_properties(integration.backend.${_case} PROPERTIES
      LABELS "integration" TIMEOUT 300)
  endforeach()
else()
  message(WARNING "mosquitto, openssl or python3 missing: backend integration tests skipped")
endif()
