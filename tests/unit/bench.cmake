# coverd-bench (tests/bench/bench.c): prints the store's bytes-per-hour and replay
# throughput figures against naive and raw SQLite writers. A benchmark, not a test, so it
# is built with the tests but not registered with ctest. Run: coverd-bench --dir DIR
add_executable(coverd-bench ${PROJECT_SOURCE_DIR}/tests/bench/bench.c)
target_link_libraries(coverd-bench PRIVATE coverd_flags coverd_daemon PkgConfig::SQLITE3 m)
