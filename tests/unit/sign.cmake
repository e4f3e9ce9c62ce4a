# Unit tests of sync/sign.c (the device key and record signatures).
add_executable(test_sign ${CMAKE_CURRENT_LIST_DIR}/test_sign.c)
target_link_libraries(test_sign PRIVATE coverd_flags coverd_sign PkgConfig::CMOCKA
  MbedTLS::mbedcrypto)
# daemon/store.h only, for the store_sign_fn type sign_body must match.
target_include_directories(test_sign PRIVATE ${PROJECT_SOURCE_DIR}/daemon)
add_test(NAME unit.sign COMMAND test_sign)
set_tests_properties(unit.sign PROPERTIES LABELS "unit")
