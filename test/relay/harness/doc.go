// Package harness runs the real programs of kubemail's outbound tests and benchmark on loopback:
// `kubemail server` processes, each on port 25 (and 587, 465, 143, 993) of its own 127.x.y.z
// address; a DNS server (internal/dnstest) answering MX and A records for the test domains;
// throwaway Postfix instances run as root from a temp config_directory; and Postfix's smtp-sink.
//
// Every start returns an error instead of failing a test, so that test/relay and the
// bench/outbound program share it; every process it starts is stopped by the matching Stop
// (Postfix: `postfix stop`, then SIGKILL of every process of that instance, found by its
// MAIL_CONFIG environment variable).
//
// The addresses come from Net, a /24 in 127.0.0.0/8 picked at random per process, so that
// concurrent runs on one machine (other agents, CI jobs) do not fight over port 25.
package harness
