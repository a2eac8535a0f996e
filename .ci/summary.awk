# The closing line of a test run, from libtest's output and the harness's
# own lines (tests/common), for ./test and .ci/run:
#
#   test result: ... N passed; N failed; N ignored ...   summed over binaries
#   SKIP: ..., SKIP (aarch64 under qemu-user): ...       a test that returned
#       early (a missing prerequisite, an emulator gap): libtest counts it
#       as passed, so it moves from passed to skipped
#   SKIP CASE ...                                        one case of a test
#       whose other cases ran: the test stays passed; counted as a case
#   HOST ONLY ...                                        a test that does not
#       run the binary under test (the aarch64 pass): in neither count
#
# libtest may print "test NAME ... " before a test's own lines (one test
# thread), so a marker counts at the start of a line or after "... ".
function marker(name) { return $0 ~ ("(^|\\.\\.\\. )" name) }
/^test result:/ {
  for (i = 1; i <= NF; i++) {
    if ($(i + 1) ~ /^passed/) passed += $i
    if ($(i + 1) ~ /^failed/) failed += $i
    if ($(i + 1) ~ /^ignored/) ignored += $i
  }
}
marker("SKIP CASE") { cases++; next }
marker("SKIP[: (]") { skipped++ }
marker("HOST ONLY") { host++ }
# Two lines: the details, then the plain closing line CI reads.
END {
  printf "skipped: %d ignored, %d at run time; %d cases skipped; %d host-only tests not counted\n",
    ignored, skipped, cases, host
  printf "tests: %d passed, %d failed, %d skipped\n", passed - skipped - host, failed, ignored + skipped
}
