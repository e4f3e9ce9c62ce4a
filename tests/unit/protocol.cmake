# docs/protocol.md and docs/schema/*.json checked against each other (Python, stdlib only).
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME unit.protocol
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_protocol.py ${PROJECT_SOURCE_DIR})
  set_tests_properties(unit.protocol PROPERTIES LABELS "unit")
endif()

# docs/schema/event.schema.json against every committed scenario line and the examples of
# docs/scenario-format.md, good and bad.
add_test(NAME unit.event_schema
  COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_LIST_DIR}/test_event_schema.py ${PROJECT_SOURCE_DIR})
set_tests_properties(unit.event_schema PROPERTIES LABELS "unit")
