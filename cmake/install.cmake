# `cmake --install` for programs that embed okd: the layer libraries (tensor ... distill), their
# headers under <prefix>/include/okd, and a CMake package, so that another project writes
#   find_package(okd REQUIRED)
#   target_link_libraries(app PRIVATE okd::okd)   # or okd::tensor, okd::nn, ... one layer
# docs/embedding.md explains the rest; examples/embed is such a project, built by scripts/test.sh.
# The same okd::* names exist in the tree, for projects that add okd with add_subdirectory.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(OKD_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/okd)
set(OKD_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/okd)

# okd::okd: every layer (distill links optim, nn, autograd, data and tensor beneath it).
add_library(okd_all INTERFACE)
target_link_libraries(okd_all INTERFACE okd_distill)
set(OKD_EXPORTED_LAYERS tensor autograd nn optim data distill)
foreach(layer ${OKD_EXPORTED_LAYERS})
  set_target_properties(okd_${layer} PROPERTIES EXPORT_NAME ${layer})
  add_library(okd::${layer} ALIAS okd_${layer})
endforeach()
set_target_properties(okd_all PROPERTIES EXPORT_NAME okd)
set_target_properties(okd_options PROPERTIES EXPORT_NAME options)
add_library(okd::okd ALIAS okd_all)

install(TARGETS okd_options okd_all
        okd_tensor okd_autograd okd_nn okd_optim okd_data okd_distill
        EXPORT okdTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
# Public headers keep their paths; the simulator's stand-in CUDA headers stay behind.
install(DIRECTORY ${OKD_EXPORTED_LAYERS}
        DESTINATION ${OKD_INSTALL_INCLUDEDIR}
        FILES_MATCHING PATTERN "*.h" PATTERN "*.def" PATTERN "*.inc"
        PATTERN "sim" EXCLUDE)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/generated/okd/build_config.h
        DESTINATION ${OKD_INSTALL_INCLUDEDIR}/okd)
install(EXPORT okdTargets NAMESPACE okd:: DESTINATION ${OKD_INSTALL_CMAKEDIR})

# The package file finds again what the libraries link (OpenMP, OpenBLAS, CUDA, zlib, threads),
# as this build found it.
set(OKD_OPENBLAS_VIA_PKGCONFIG OFF)
if(TARGET PkgConfig::OPENBLAS)
  set(OKD_OPENBLAS_VIA_PKGCONFIG ON)
endif()
configure_package_config_file(cmake/okdConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/okdConfig.cmake INSTALL_DESTINATION ${OKD_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/okdConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/okdConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/okdConfigVersion.cmake
        DESTINATION ${OKD_INSTALL_CMAKEDIR})
