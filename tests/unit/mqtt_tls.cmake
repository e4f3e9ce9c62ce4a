# Unit tests of sync/mqtt_tls.c (TLS settings shared by the device client and the ingest).
add_executable(test_mqtt_tls ${CMAKE_CURRENT_LIST_DIR}/test_mqtt_tls.c)
target_link_libraries(test_mqtt_tls PRIVATE coverd_flags coverd_mqtt_tls PkgConfig::CMOCKA
  PkgConfig::MOSQUITTO)
target_compile_definitions(test_mqtt_tls PRIVATE COVERD_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
add_test(NAME unit.mqtt_tls COMMAND test_mqtt_tls)
set_tests_properties(unit.mqtt_tls PROPERTIES LABELS "unit")
