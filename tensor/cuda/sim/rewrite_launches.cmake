# The SIMT simulator's build step (README.md): copies a .cu file to a .cpp that g++ compiles, with
# each kernel launch `k<<<grid, block, smem, stream>>>(args)` rewritten to the C++ expression
# `k | ::okd::sim::LaunchConfig(__FILE__, __LINE__, grid, block, smem, stream) |
# ::okd::sim::launch_args(args)` (tensor/cuda/sim/simt.h). Lines keep their numbers, and a #line
# directive names the .cu file, so errors and __FILE__ point at the original source.
# Usage: cmake -DIN=file.cu -DOUT=file.cu.cpp -P rewrite_launches.cmake
file(READ "${IN}" source)
string(REPLACE "<<<" " | ::okd::sim::LaunchConfig(__FILE__, __LINE__, " source "${source}")
string(REGEX REPLACE ">>>[ \t\r\n]*\\(" ") | ::okd::sim::launch_args(" source "${source}")
if(source MATCHES ">>>")
  message(FATAL_ERROR "${IN}: a '>>>' that is not followed by a launch's argument list")
endif()
file(WRITE "${OUT}.tmp" "#include <cuda_runtime.h>\n#line 1 \"${IN}\"\n${source}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")
