# The SIMT simulator's CMake helper (README.md), included by the top-level CMakeLists.txt when
# OKD_CUDA_SIM is on. okd_sim_sources(VAR file.cu...) sets VAR to the generated .cpp copies of
# the .cu files, their kernel launches rewritten (rewrite_launches.cmake) and regenerated
# whenever a .cu file changes.
# OKD_SIM_FMA: compile the kernels with fused multiply-adds contracted wherever the compiler sees
# a * b + c (g++ -mfma -ffp-contract=fast, x86-64 with FMA3), as nvcc contracts device code by
# default: results then differ from the CPU's in the last bits the way a GPU's do, which shows
# the tests that would wrongly expect bit equality on a GPU.
option(OKD_SIM_FMA "SIMT simulator: contract a * b + c into fused multiply-adds, as nvcc does" OFF)
if(OKD_SIM_FMA)
  set(OKD_SIM_KERNEL_OPTIONS -mfma -ffp-contract=fast -Wno-unknown-pragmas)
else()
  set(OKD_SIM_KERNEL_OPTIONS -ffp-contract=off -Wno-unknown-pragmas)
endif()
set(OKD_SIM_DIR ${CMAKE_CURRENT_LIST_DIR})
function(okd_sim_sources var)
  set(outs)
  foreach(cu ${ARGN})
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${cu})
    set(out ${PROJECT_BINARY_DIR}/sim_sources/${rel}.cpp)
    add_custom_command(OUTPUT ${out}
      COMMAND ${CMAKE_COMMAND} -DIN=${cu} -DOUT=${out} -P ${OKD_SIM_DIR}/rewrite_launches.cmake
      DEPENDS ${cu} ${OKD_SIM_DIR}/rewrite_launches.cmake VERBATIM)
    list(APPEND outs ${out})
  endforeach()
  set(${var} ${outs} PARENT_SCOPE)
endfunction()
