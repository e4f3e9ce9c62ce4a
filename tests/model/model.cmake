# The reference model of the billing rules (design.md section 2, revision 2) and the
# differential test that replays generated scenarios through the real daemon and compares
# the sessions, activations and billed units with the model (tests/model/README.md).
# Included by tests/CMakeLists.txt. Python 3 standard library only.

set(_model_dir ${CMAKE_CURRENT_LIST_DIR})

# The model alone, against cases derived by hand from the design text.
add_test(NAME model.unit COMMAND python3 ${_model_dir}/test_model.py)
set_tests_properties(model.unit PROPERTIES LABELS "model" ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")

# 2000 generated scenarios (seed 1) through coverd --replay and coverctl, against the model,
# jobs counts per activation included.
# A disagreement prints a short diff and leaves the scenario in /tmp/model-fail-1-N.
add_test(NAME model.differential
  COMMAND ${_model_dir}/run --seed 1 --count 2000 --compare-jobs
          --coverd $<TARGET_FILE:coverd> --coverctl $<TARGET_FILE:coverctl>)
set_tests_properties(model.differential PROPERTIES LABELS "model" TIMEOUT 1500
  ENVIRONMENT "PYTHONDONTWRITEBYTECODE=1")
