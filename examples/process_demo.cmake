# process_demo: fork() and spawn side by side, for students of process creation.
# Included from examples/CMakeLists.txt; the check script is tests/demo/process_demo_check.sh.
add_executable(process_demo ${CMAKE_CURRENT_LIST_DIR}/process_demo.cpp)
target_link_libraries(process_demo PRIVATE Boost::headers prefork_private)
# Boost.Process v2 header-only; its header is slow to compile, so only this .cpp includes it.
target_compile_definitions(process_demo PRIVATE BOOST_PROCESS_V2_HEADER_ONLY=1)
