# Board config fragments (boards/*/board.conf): each, appended to the shipped
# firmware/coverd.conf as the image recipes do, must load with `coverd -n` and apply every
# key it sets. A new board folder is picked up at the next configure.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
file(GLOB _board_confs CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/boards/*/board.conf)
foreach(_conf IN LISTS _board_confs)
  get_filename_component(_dir ${_conf} DIRECTORY)
  get_filename_component(_board ${_dir} NAME)
  # The interpreter by path, not as the imported target: ctest puts the cross emulator in
  # front of target commands, and python is a host program; coverd gets it explicitly.
  add_test(NAME boards.config.${_board}
    COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/boards_check.py
      ${PROJECT_SOURCE_DIR}/firmware/coverd.conf ${_conf}
      -- ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:coverd>)
  set_tests_properties(boards.config.${_board} PROPERTIES LABELS "integration;boards")
endforeach()
