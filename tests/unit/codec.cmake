# Unit tests of the codecs: evjson (scenario and socket event JSON), config (the INI
# file) and its golden round trip. The golden test reads tests/data/config/ and the
# docs from the source tree; regenerate its stored files after an intended change with
#     COVERD_UPDATE_GOLDEN=1 ctest -R config_golden
foreach(_t evjson config config_golden log)
  add_executable(test_${_t} ${CMAKE_CURRENT_LIST_DIR}/test_${_t}.c)
  target_link_libraries(test_${_t} PRIVATE coverd_flags coverd_daemon PkgConfig::CMOCKA)
  target_compile_definitions(test_${_t} PRIVATE COVERD_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  add_test(NAME unit.${_t} COMMAND test_${_t})
  set_tests_properties(unit.${_t} PROPERTIES LABELS "unit;codec")
endforeach()
