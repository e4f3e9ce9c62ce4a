# Design invariant 5: storage full, track detail goes first, billing records are kept.
add_test(NAME integration.storage_full
  COMMAND ${CMAKE_CURRENT_LIST_DIR}/storage_full.sh $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl>
          ${PROJECT_SOURCE_DIR}/tests/scenarios/shift-6h.jsonl
          ${PROJECT_SOURCE_DIR}/tests/scenarios/test.conf
          ${CMAKE_CURRENT_BINARY_DIR}/storage-full-work)
set_tests_properties(integration.storage_full PROPERTIES LABELS "integration" TIMEOUT 120)
