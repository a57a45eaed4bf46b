# scripts/lib/release_build.sh, sourced by the benchmark scripts (run from the project root).
#
# release_build TARGET...: sets the machine up (scripts/setup.sh) and builds those targets of the
# release preset, quietly.
release_build() {
  ./scripts/setup.sh >/dev/null
  cmake --preset release >/dev/null
  # shellcheck disable=SC2046
  cmake --build --preset release -j "$(nproc)" $(printf -- '--target %s ' "$@") >/dev/null
}
