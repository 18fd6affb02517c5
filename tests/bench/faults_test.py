#!/usr/bin/env python3
"""Unit test of the fault-injection harness's bookkeeping (bench/faults/): the
/proc parsing that attributes a connection to the worker holding its server
side, and the classification of every failed request as explained by the fault
or lost. Fed sample /proc text and made-up failures: no server runs here (the
client's delivery check runs on a loopback socket pair of its own).
  usage: faults_test.py [unittest options]"""

import os
import socket
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "faults"))
sys.path.insert(1, os.path.join(ROOT, "bench"))

import attribution as at  # noqa: E402
import clients  # noqa: E402
import procfs  # noqa: E402
import server  # noqa: E402

# A server on 127.0.0.1:42439 (0xA5C7) with two connections from ports 51058 (0xC772) and
# 51060 (0xC774), a listener, and a TIME_WAIT socket (inode 0).
NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:A5C7 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3125745 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A5C7 0100007F:C772 01 00000000:00000000 00:00000000 00000000     0        0 4000001 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:C772 0100007F:A5C7 01 00000000:00000000 00:00000000 00000000     0        0 4000002 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:A5C7 0100007F:C774 01 00000000:00000000 00:00000000 00000000     0        0 4000003 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:A5C7 0100007F:D000 06 00000000:00000000 03:00000A2B 00000000     0        0 0 3 0000000000000000
"""

# An IPv6 socket on [::1]:8081 (0x1F91) with a peer ::ffff:127.0.0.1 port 40000 (0x9C40).
NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1F91 0000000000000000FFFF00000100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 5000001 1 0000000000000000 20 4 30 10 -1
"""


class ProcNetTcp(unittest.TestCase):
    def test_addresses_and_ports_decode(self):
        e = procfs.parse_net_tcp(NET_TCP)
        self.assertEqual(len(e), 5)
        self.assertEqual((e[1].local_host, e[1].local_port, e[1].remote_host, e[1].remote_port,
                          e[1].state, e[1].inode), ("127.0.0.1", 42439, "127.0.0.1", 51058, 1,
                                                    4000001))
        self.assertEqual(e[0].state, 0x0A)  # LISTEN

    def test_ipv6_and_mapped_ipv4(self):
        (e,) = procfs.parse_net_tcp(NET_TCP6)
        self.assertEqual((e.local_host, e.local_port), ("::1", 8081))
        self.assertEqual((e.remote_host, e.remote_port), ("127.0.0.1", 40000))

    def test_a_workers_inodes_map_to_its_clients_ports(self):
        e = procfs.parse_net_tcp(NET_TCP)
        # the client's own socket (4000002) has the server's port as its remote end: not ours
        self.assertEqual(procfs.client_ports({4000001, 4000002, 4000003, 3125745}, e, 42439),
                         {51058, 51060})
        self.assertEqual(procfs.client_ports({4000003}, e, 42439), {51060})
        self.assertEqual(procfs.client_ports({4000001}, e, 9999), set())
        self.assertEqual(procfs.client_ports(set(), e, 42439), set())

    def test_filtered_by_inode_reads_only_those_lines(self):
        e = procfs.parse_net_tcp(NET_TCP, inodes={4000003, 77})
        self.assertEqual([x.inode for x in e], [4000003])
        # an inode that only appears as a part of a longer number is not matched
        self.assertEqual(procfs.parse_net_tcp(NET_TCP, inodes={400000}), [])


class ProcStat(unittest.TestCase):
    def test_a_command_name_with_spaces_and_parentheses(self):
        ticks = procfs.CLOCK_TICKS
        text = (f"4242 (a (b) c) T 4200 4200 4200 0 -1 4194560 100 0 0 0 {3 * ticks} "
                f"{ticks} 0 0 20 0 1 0 123 0 0")
        s = procfs.parse_stat(text)
        self.assertEqual((s.pid, s.state, s.ppid, s.pgid, s.sid), (4242, "T", 4200, 4200, 4200))
        self.assertAlmostEqual(s.cpu_s, 4.0)

    def test_members_by_group_session_or_parent(self):
        P = procfs.ProcStat
        stats = [P(10, "S", 1, 10, 10, 0), P(11, "S", 10, 10, 10, 0), P(12, "Z", 10, 12, 12, 0),
                 P(13, "S", 1, 13, 10, 0), P(14, "S", 1, 14, 14, 0), P(15, "S", 99, 15, 15, 0)]
        got = sorted(s.pid for s in procfs.processes_of({10}, {10}, stats))
        self.assertEqual(got, [10, 11, 12, 13])  # not 14 (elsewhere), not 15 (another parent)


    def test_stopped_when_every_thread_is(self):
        with tempfile.TemporaryDirectory() as proc:
            def task(tid, state):
                os.makedirs(f"{proc}/50/task/{tid}", exist_ok=True)
                with open(f"{proc}/50/task/{tid}/stat", "w") as f:
                    f.write(f"{tid} (w) {state} 1 50 50 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0")
            task(50, "T")
            task(51, "S")  # a thread still in a system call
            self.assertFalse(procfs.all_stopped(50, proc))
            task(51, "t")
            self.assertTrue(procfs.all_stopped(50, proc))
            task(51, "Z")
            self.assertIsNone(procfs.all_stopped(50, proc))
            self.assertIsNone(procfs.all_stopped(51, proc))  # no such process


class Delivery(unittest.TestCase):
    """FramedConnection.delivered() on loopback: what the server's TCP acknowledged."""

    def setUp(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def tearDown(self):
        self.listener.close()

    def until(self, predicate):
        end = time.monotonic() + 5
        while not predicate() and time.monotonic() < end:
            time.sleep(0.005)
        return predicate()

    def test_bytes_after_the_servers_close_are_never_acknowledged(self):
        conn = clients.FramedConnection("127.0.0.1", self.port, 5)
        server, _ = self.listener.accept()
        with server:
            server.close()  # idle, from all it could read: a FIN
        self.assertTrue(self.until(lambda: conn.sock.recv(1, socket.MSG_PEEK) == b""))
        with self.assertRaises((EOFError, OSError)):  # the FIN, or the RST after it
            conn.exchange(b"late", [0, None])
        self.assertIs(conn.delivered(), False)
        conn.close()

    def test_bytes_read_or_left_unread_at_the_close_are_acknowledged(self):
        conn = clients.FramedConnection("127.0.0.1", self.port, 5)
        server, _ = self.listener.accept()
        conn.sock.sendall(b"\0\0\0\4abcd")
        conn.written += 8
        self.assertTrue(self.until(lambda: conn.delivered() is True))
        server.close()  # unread bytes: the close is an RST
        with self.assertRaises(OSError):
            conn.sock.recv(1)
        self.assertIs(conn.delivered(), True)
        conn.close()


class ListeningLines(unittest.TestCase):
    def test_ports_from_the_servers_first_lines(self):
        got = server.ServerProcess.parse_listening(
            "listening framed 127.0.0.1:42439\nlistening udp 127.0.0.1:53023\n"
            "listening metrics 127.0.0.1:38921\nlistening framed 127.0.0.1:1\n")
        self.assertEqual(got, {"framed": 42439, "udp": 53023, "metrics": 38921,
                               "metrics_address": "127.0.0.1:38921"})

    def test_incomplete_output_has_no_metrics_yet(self):
        self.assertNotIn("metrics", server.ServerProcess.parse_listening(
            "listening framed 127.0.0.1:42439\nlisten"))


def failure(error=at.RESET, port=51058, start=10.0, sent=12.0, failed=12.5, answered=5,
            last=11.9, reply_bytes=0, client="keepalive", delivered=None):
    return at.Failure(client, error, port, start, failed, sent, answered, last, reply_bytes,
                      delivered=delivered)


KILL = at.Cut(pid=300, at=12.2, ports=frozenset({51058, 51060}))


class KilledWithItsWorker(unittest.TestCase):
    def test_a_connection_the_killed_worker_held(self):
        self.assertEqual(at.classify(failure(), at.Policy(cuts=[KILL])), at.KILLED)

    def test_any_error_kind_on_it_is_explained(self):
        for error in (at.EOF, at.RESET, at.TIMEOUT):
            self.assertEqual(at.classify(failure(error=error), at.Policy(cuts=[KILL])), at.KILLED)

    def test_a_connection_on_another_worker_is_lost(self):
        self.assertEqual(at.classify(failure(port=40000), at.Policy(cuts=[KILL])), at.LOST)

    def test_a_later_connection_on_the_same_port_is_lost(self):
        # the port was reused after the kill: this connection never was on the killed worker
        f = failure(start=12.3, sent=12.4, failed=12.6, answered=0, last=None)
        self.assertEqual(at.classify(f, at.Policy(cuts=[KILL])), at.LOST)

    def test_a_failure_before_the_kill_is_lost(self):
        f = failure(sent=11.0, failed=11.5)
        self.assertEqual(at.classify(f, at.Policy(cuts=[KILL])), at.LOST)

    def test_refused_is_never_explained_by_a_kill(self):
        f = failure(error=at.REFUSED, port=0, sent=None, answered=0, last=None)
        self.assertEqual(at.classify(f, at.Policy(cuts=[KILL])), at.LOST)

    def test_without_any_fault_every_failure_is_lost(self):
        self.assertEqual(at.classify(failure(), at.Policy()), at.LOST)
        self.assertEqual(at.classify(failure(error=at.EOF), at.Policy()), at.LOST)

    def test_a_stopped_workers_cut_names_its_reason(self):
        cut = at.Cut(7, 12.2, frozenset({51058}), "stopped with its worker")
        self.assertEqual(at.classify(failure(error=at.TIMEOUT), at.Policy(cuts=[cut])),
                         "stopped with its worker")


ACCEPTED = at.Cut(0, 11.95, frozenset({51058}), "accepted")


def stop_policy():
    return at.Policy(stop_at=12.0, accepted=ACCEPTED)


class AtSigterm(unittest.TestCase):
    def test_sent_before_sigterm_on_an_accepted_connection_is_lost(self):
        f = failure(sent=11.99, failed=12.1, error=at.EOF)
        self.assertEqual(at.classify(f, stop_policy()), at.LOST)

    def test_accepted_is_known_from_an_earlier_answer_too(self):
        f = failure(port=40000, sent=11.99, failed=12.1, error=at.EOF, last=11.5)
        self.assertEqual(at.classify(f, stop_policy()), at.LOST)

    def test_a_clean_close_after_sigterm_is_explained(self):
        f = failure(sent=12.01, failed=12.1, error=at.EOF)
        self.assertEqual(at.classify(f, stop_policy()), at.CLOSED_BY_STOP)

    def test_a_reset_or_a_cut_reply_after_sigterm_is_lost(self):
        self.assertEqual(at.classify(failure(sent=12.01, failed=12.1, error=at.RESET),
                                     stop_policy()), at.LOST)
        self.assertEqual(at.classify(failure(sent=12.01, failed=12.1, error=at.EOF,
                                             reply_bytes=3), stop_policy()), at.LOST)

    def test_a_connection_not_yet_accepted_is_promised_nothing(self):
        f = failure(port=40000, start=11.98, sent=11.99, failed=12.1, answered=0, last=None)
        self.assertEqual(at.classify(f, stop_policy()), at.NOT_ACCEPTED)

    def test_refused_after_sigterm_is_explained_before_it_is_lost(self):
        after = failure(error=at.REFUSED, port=0, start=12.1, sent=None, failed=12.1,
                        answered=0, last=None)
        before = failure(error=at.REFUSED, port=0, start=11.0, sent=None, failed=11.0,
                         answered=0, last=None)
        self.assertEqual(at.classify(after, stop_policy()), at.REFUSED_AFTER_STOP)
        self.assertEqual(at.classify(before, stop_policy()), at.LOST)

    def test_sent_before_sigterm_but_never_acknowledged_was_not_in_the_server(self):
        f = failure(sent=11.99, failed=12.1, error=at.EOF, delivered=False)
        self.assertEqual(at.classify(f, stop_policy()), at.NOT_DELIVERED)

    def test_acknowledged_or_unknown_or_reset_or_part_answered_is_still_lost(self):
        for f in (failure(sent=11.99, failed=12.1, error=at.EOF, delivered=True),
                  failure(sent=11.99, failed=12.1, error=at.RESET, delivered=True),
                  failure(sent=11.99, failed=12.1, error=at.RESET, delivered=False),
                  failure(sent=11.99, failed=12.1, error=at.EOF, delivered=None),
                  failure(sent=11.99, failed=12.1, error=at.EOF, delivered=False,
                          reply_bytes=3),
                  failure(sent=11.99, failed=12.1, error=at.TIMEOUT, delivered=False)):
            self.assertEqual(at.classify(f, stop_policy()), at.LOST, f)

    def test_a_killed_worker_still_explains_its_connections(self):
        policy = at.Policy(cuts=[KILL], stop_at=12.0, accepted=ACCEPTED)
        self.assertEqual(at.classify(failure(sent=11.99), policy), at.KILLED)


class ReloadAndFlood(unittest.TestCase):
    def test_a_reused_connection_closed_before_any_reply_byte_is_closed_idle(self):
        policy = at.Policy(closed_idle_ok=True)
        self.assertEqual(at.classify(failure(error=at.EOF), policy), at.CLOSED_IDLE)

    def test_not_on_a_new_connection_nor_a_reset_nor_mid_reply(self):
        policy = at.Policy(closed_idle_ok=True)
        for f in (failure(error=at.EOF, answered=0, last=None), failure(error=at.RESET),
                  failure(error=at.EOF, reply_bytes=2), failure(error=at.TIMEOUT)):
            self.assertEqual(at.classify(f, policy), at.LOST, f)

    def test_a_reset_is_lost_acknowledged_or_not(self):
        # Closed with the request unread in its socket, a worker resets at once: the ACK
        # it delayed never comes, so "never acknowledged" does not excuse a reset.
        policy = at.Policy(closed_idle_ok=True)
        for delivered in (False, True, None):
            self.assertEqual(at.classify(failure(error=at.RESET, delivered=delivered), policy),
                             at.LOST, delivered)

    def test_closed_idle_is_lost_where_nothing_should_close(self):
        self.assertEqual(at.classify(failure(error=at.EOF), at.Policy()), at.LOST)

    def test_a_connection_begun_in_the_flood_may_wait_it_out(self):
        policy = at.Policy(flood=(11.0, 13.0))
        self.assertEqual(at.classify(failure(error=at.TIMEOUT, start=11.5, answered=0,
                                             last=None), policy), at.SHED)
        # begun before the flood, or answered before: lost
        self.assertEqual(at.classify(failure(error=at.TIMEOUT, start=10.0), policy), at.LOST)
        self.assertEqual(at.classify(failure(error=at.TIMEOUT, start=11.5, answered=1),
                                     policy), at.LOST)
        self.assertEqual(at.classify(failure(error=at.REFUSED, port=0, start=11.5, answered=0,
                                             last=None), policy), at.LOST)


class Tally(unittest.TestCase):
    def test_counts_by_category_and_the_lost_in_order(self):
        fs = [failure(), failure(port=1), failure(port=2), failure(error=at.REFUSED, port=0)]
        counts, lost = at.tally(fs, at.Policy(cuts=[KILL]))
        self.assertEqual(counts, {at.KILLED: 1, at.LOST: 3})
        self.assertEqual([f.port for f in lost], [1, 2, 0])

    def test_client_side_error_columns(self):
        fs = [failure(error=e) for e in (at.REFUSED, at.RESET, at.EOF, at.TIMEOUT, at.WRONG,
                                         at.OTHER)]
        self.assertEqual(at.error_counts(fs), {"refused": 1, "reset": 2, "timeout": 1,
                                               "other": 2})


if __name__ == "__main__":
    unittest.main()
