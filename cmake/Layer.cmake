# smtplb_layer(NAME SOURCES ... DEPENDS ...)
# Each layer sees only its own headers and those of the layers it depends on:
# its include directory holds a single link, <build>/layers/NAME/NAME -> src/NAME,
# so `#include "io/x.hpp"` from src/core fails to compile.
function(smtplb_layer name)
    cmake_parse_arguments(L "" "" "SOURCES;DEPENDS;LIBS" ${ARGN})
    set(link_dir ${CMAKE_BINARY_DIR}/layers/${name})
    file(MAKE_DIRECTORY ${link_dir})
    file(CREATE_LINK ${CMAKE_SOURCE_DIR}/src/${name} ${link_dir}/${name} SYMBOLIC)
    add_library(smtplb_${name} STATIC ${L_SOURCES})
    target_include_directories(smtplb_${name} PUBLIC ${link_dir})
    foreach(dep ${L_DEPENDS})
        target_link_libraries(smtplb_${name} PUBLIC smtplb_${dep})
    endforeach()
    if(L_LIBS)
        target_link_libraries(smtplb_${name} PUBLIC ${L_LIBS})
    endif()
endfunction()
