# docs/protocol.md and docs/schema/*.json checked against each other (Python, stdlib only).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME unit.protocol
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_protocol.py ${PROJECT_SOURCE_DIR})
  set_tests_properties(unit.protocol PROPERTIES LABELS "unit")
endif()
