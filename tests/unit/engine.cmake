# Session engine tests, written from the specification (daemon/engine.h and design.md
# section 2) rather than from the implementation. The harness rebuilds sessions and
# activations from the engine's actions and is shared by both tests.
add_library(coverd_engine_harness STATIC ${CMAKE_CURRENT_LIST_DIR}/engine_harness.c)
target_include_directories(coverd_engine_harness PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(coverd_engine_harness PUBLIC coverd_daemon PRIVATE coverd_flags)

# Table-driven rule tests plus the cases a table row cannot express.
add_executable(test_engine ${CMAKE_CURRENT_LIST_DIR}/test_engine.c)
target_link_libraries(test_engine PRIVATE coverd_flags coverd_engine_harness coverd_daemon
  PkgConfig::CMOCKA m)
add_test(NAME engine COMMAND test_engine)

# The activation split over at least 100,000 random sessions. The seed is fixed so a
# failure reproduces; set COVERD_PROP_SEED (and COVERD_PROP_SESSIONS) to explore others.
add_executable(test_activation_prop ${CMAKE_CURRENT_LIST_DIR}/test_activation_prop.c)
target_link_libraries(test_activation_prop PRIVATE coverd_flags coverd_engine_harness
  coverd_daemon m)
add_test(NAME engine_activation_prop COMMAND test_activation_prop)
set_tests_properties(engine_activation_prop PROPERTIES LABELS property TIMEOUT 300)
