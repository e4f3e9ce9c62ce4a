# Unit tests of tools/ingest_core.c (the reference ingest's checks and storage).
add_executable(test_ingest ${CMAKE_CURRENT_LIST_DIR}/test_ingest.c)
target_link_libraries(test_ingest PRIVATE coverd_flags coverd_ingest_core coverd_sign
  PkgConfig::CMOCKA PkgConfig::SQLITE3 PkgConfig::CJSON)
add_test(NAME unit.ingest COMMAND test_ingest)
set_tests_properties(unit.ingest PROPERTIES LABELS "unit")
