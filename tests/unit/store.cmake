# The SQLite store (daemon/store.c) against real database files in a temporary directory.
add_executable(test_store test_store.c)
target_link_libraries(test_store PRIVATE coverd_flags coverd_daemon PkgConfig::CMOCKA
  PkgConfig::SQLITE3 PkgConfig::CJSON MbedTLS::mbedcrypto m)
target_compile_definitions(test_store PRIVATE
  STORE_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/tests/data")
add_test(NAME unit.store COMMAND test_store)
