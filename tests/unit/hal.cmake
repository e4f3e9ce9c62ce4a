# Unit tests of the event loop (daemon/loop.c, compiled in: it belongs to the coverd
# executable, not to a library) and of hal/: the clock timeline with a fake clock source,
# the GNSS wrapper and its mock, the ignition mock and the watchdog's notify protocol.
add_executable(test_loop ${CMAKE_CURRENT_LIST_DIR}/test_loop.c ${PROJECT_SOURCE_DIR}/daemon/loop.c)
target_include_directories(test_loop PRIVATE ${PROJECT_SOURCE_DIR}/daemon)
target_link_libraries(test_loop PRIVATE coverd_flags PkgConfig::CMOCKA)
add_test(NAME unit.loop COMMAND test_loop)

add_executable(test_hal ${CMAKE_CURRENT_LIST_DIR}/test_hal.c)
target_link_libraries(test_hal PRIVATE coverd_flags coverd_hal coverd_daemon PkgConfig::CMOCKA m)
add_test(NAME unit.hal COMMAND test_hal)
set_tests_properties(unit.loop unit.hal PROPERTIES LABELS "unit")
