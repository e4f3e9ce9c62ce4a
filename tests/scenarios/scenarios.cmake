# Golden scenario tests: each scenario is replayed through the real daemon and store, and
# its sessions and activations are diffed against expected/ (see README.md beside this).
# Included by tests/scenarios/CMakeLists.txt.

set(_scen_dir ${CMAKE_CURRENT_LIST_DIR})
set(_scen_run ${_scen_dir}/run-golden.sh)

# One golden test per scenario. bad-input also compares the replay's report of the bad
# lines and its summary (expected/bad-input.report.txt).
foreach(_s shift-6h tunnel-gap app-crash restart-mid-session midnight no-policy bad-input)
  set(_extra "")
  if(_s STREQUAL "bad-input")
    set(_extra --report)
  endif()
  add_test(NAME scenario.${_s}
    COMMAND ${_scen_run} ${_extra} $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl>
            ${_scen_dir}/${_s}.jsonl)
  set_tests_properties(scenario.${_s} PROPERTIES LABELS "scenario" TIMEOUT 300)
endforeach()

# A scenario with simulated restarts must give exactly the results of the same scenario
# without them (invariant 7), apart from journal ids.
add_test(NAME scenario.restart-equals-no-restart
  COMMAND ${_scen_run} --compare ${_scen_dir}/restart-mid-session.baseline.jsonl
          $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl> ${_scen_dir}/restart-mid-session.jsonl)
set_tests_properties(scenario.restart-equals-no-restart PROPERTIES LABELS "scenario" TIMEOUT 300)

# The six-hour shift under valgrind: no invalid access, no leak, and still the golden
# result. Shown as "Not Run (Disabled)" where valgrind is missing rather than passing.
find_program(COVERD_VALGRIND valgrind)
add_test(NAME scenario.shift-6h.valgrind
  COMMAND ${_scen_run}
          --wrap "${COVERD_VALGRIND} --quiet --error-exitcode=1 --leak-check=full"
          $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl> ${_scen_dir}/shift-6h.jsonl)
set_tests_properties(scenario.shift-6h.valgrind PROPERTIES LABELS "scenario;valgrind"
  TIMEOUT 1800)
if(NOT COVERD_VALGRIND)
  set_tests_properties(scenario.shift-6h.valgrind PROPERTIES DISABLED TRUE)
endif()

# The committed scenarios are exactly what make-scenarios.sh (and README.md) says, and the
# generator behaves as documented.
add_test(NAME scenario.regenerate COMMAND ${_scen_dir}/check-regenerate.sh)
set_tests_properties(scenario.regenerate PROPERTIES LABELS "scenario")
add_test(NAME scenario.gpx2scenario
  COMMAND python3 ${_scen_dir}/test_gpx2scenario.py)
set_tests_properties(scenario.gpx2scenario PROPERTIES LABELS "scenario")

# A database written by the revision 1 engine (state format 1) with a session open
# mid-shift migrates on start and resumes exactly: the rest of the shift replayed into it
# gives the same sessions and activations as the whole shift replayed fresh.
add_test(NAME scenario.migration-v1-mid-shift
  COMMAND ${_scen_dir}/run-migration.sh $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl>)
set_tests_properties(scenario.migration-v1-mid-shift PROPERTIES LABELS "scenario" TIMEOUT 300)

# Revision 2 regression scenarios (tests/scenarios/rev2/): one per way the revision 1
# engine billed wrongly, each with a hand-derived expectation in expected/NAME.expect.json.
# A scenario with a NAME.conf beside it runs with that configuration.
file(GLOB _rev2 RELATIVE ${_scen_dir}/rev2 CONFIGURE_DEPENDS ${_scen_dir}/rev2/*.jsonl)
foreach(_f ${_rev2})
  string(REGEX REPLACE "\\.jsonl$" "" _s ${_f})
  add_test(NAME scenario.${_s}
    COMMAND ${_scen_run} $<TARGET_FILE:coverd> $<TARGET_FILE:coverctl> ${_scen_dir}/rev2/${_f})
  set_tests_properties(scenario.${_s} PROPERTIES LABELS "scenario;rev2" TIMEOUT 300)
endforeach()

# The rev2 scenarios are what rev2/make.py writes, byte for byte.
add_test(NAME scenario.rev2-regenerate
  COMMAND sh -c "d=$(mktemp -d) && python3 '${_scen_dir}/rev2/make.py' \"$d\" && for f in \"$d\"/*.jsonl; do cmp \"$f\" '${_scen_dir}/rev2/'$(basename \"$f\") || exit 1; done; rm -rf \"$d\"")
set_tests_properties(scenario.rev2-regenerate PROPERTIES LABELS "scenario")
