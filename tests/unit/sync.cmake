# Unit tests of delivery (sync/): the strict checks of inbound ack and cmd payloads, and
# the store functions delivery added (highest seq, track pruning at the outbox bound, the
# record of backend commands and the configuration overlay) on real database files.
add_executable(test_sync_proto ${CMAKE_CURRENT_LIST_DIR}/test_sync_proto.c)
target_link_libraries(test_sync_proto PRIVATE coverd_flags coverd_sync PkgConfig::CMOCKA)
target_include_directories(test_sync_proto PRIVATE ${PROJECT_SOURCE_DIR}/sync)
add_test(NAME unit.sync_proto COMMAND test_sync_proto)

add_executable(test_sync_store ${CMAKE_CURRENT_LIST_DIR}/test_sync_store.c)
target_link_libraries(test_sync_store PRIVATE coverd_flags coverd_daemon PkgConfig::CMOCKA
  PkgConfig::SQLITE3 m)
add_test(NAME unit.sync_store COMMAND test_sync_store)
set_tests_properties(unit.sync_proto unit.sync_store PROPERTIES LABELS "unit")
