# Unit tests of daemon/render.c (the JSON objects shared by the socket, coverctl and the
# records, and the words of coverctl explain). The coverctl tests proper are integration
# tests: tests/integration/cli.cmake.
add_executable(test_render ${CMAKE_CURRENT_LIST_DIR}/test_render.c)
target_link_libraries(test_render PRIVATE coverd_flags coverd_daemon PkgConfig::CMOCKA
  PkgConfig::CJSON)
add_test(NAME unit.render COMMAND test_render)
set_tests_properties(unit.render PROPERTIES LABELS "unit")
