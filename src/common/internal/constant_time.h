// Declassify: marks bytes computed from secrets as public for valgrind's memcheck, for the
// constant-time test (tests/ct/). That test marks secrets "undefined" with memcheck client
// requests, so that any branch or memory index that depends on them is reported; a value that is
// public by definition although computed from secrets (the outcome of a comparison) is declassified
// where it is produced, before anyone branches on it. Outside valgrind this is a short no-op
// instruction sequence; without the valgrind headers it compiles to nothing.
#ifndef QSAPI_COMMON_INTERNAL_CONSTANT_TIME_H_
#define QSAPI_COMMON_INTERNAL_CONSTANT_TIME_H_

#include <cstddef>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#define QSAPI_HAVE_VALGRIND_MEMCHECK 1
#include <valgrind/memcheck.h>
#endif
#endif

namespace qsapi::internal {

inline void Declassify(const void* data, std::size_t size) noexcept {
#ifdef QSAPI_HAVE_VALGRIND_MEMCHECK
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
  (void)VALGRIND_MAKE_MEM_DEFINED(data, size);
#pragma GCC diagnostic pop
#else
  (void)data;
  (void)size;
#endif
}

}  // namespace qsapi::internal

#endif  // QSAPI_COMMON_INTERNAL_CONSTANT_TIME_H_
