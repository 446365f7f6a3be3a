"""Pure parsing and mapping used by the agent: no server."""

from __future__ import annotations

from pgbaton.ha.config import NodeConfig, safe_name
from pgbaton.ha.controldata import parse_controldata
from pgbaton.ha.model import ClusterState, Role, parse_lsn
from pgbaton.ha.probe import parse_history, segment_timeline
from pgbaton.ocf.codes import Rc, monitor_code
from pgbaton.ocf.env import node_config, notification

CONTROLDATA = """pg_control version number:            1300
Database system identifier:           7710638002198524699
Database cluster state:               shut down in recovery
Latest checkpoint location:           0/3000060
Latest checkpoint's TimeLineID:       2
Minimum recovery ending location:     0/3000110
Min recovery ending loc's timeline:   2
"""


def test_parse_controldata() -> None:
    ctl = parse_controldata(CONTROLDATA)
    assert ctl.state is ClusterState.SHUT_DOWN_IN_RECOVERY and ctl.clean and not ctl.was_primary
    assert ctl.system_id == "7710638002198524699"
    assert ctl.end_position.timeline == 2 and ctl.end_position.lsn == parse_lsn("0/3000110")


def test_parse_history() -> None:
    forks = parse_history("1\t0/3000198\tno recovery target specified\n\n2\t0/5000000\tbefore 2000-01-01\n")
    assert [(f.timeline, f.switch_lsn) for f in forks] == [(1, 0x3000198), (2, 0x5000000)]


def test_monitor_codes() -> None:
    assert monitor_code(Role.PRIMARY, probe=False) is Rc.RUNNING_PROMOTED
    assert monitor_code(Role.CRASHED_PRIMARY, probe=True) is Rc.FAILED_PROMOTED
    assert monitor_code(Role.CRASHED_STANDBY, probe=True) is Rc.NOT_RUNNING
    assert monitor_code(Role.CRASHED_STANDBY, probe=False) is Rc.ERR_GENERIC
    assert monitor_code(Role.REBUILDING, probe=False) is Rc.SUCCESS
    assert monitor_code(Role.STOPPED, probe=False) is Rc.NOT_RUNNING


def test_env_parsing_and_conninfo() -> None:
    cfg = node_config({
        "OCF_RESKEY_CRM_meta_on_node": "db-1", "OCF_RESKEY_node_hosts": "db-1=10.0.0.1 db-2=10.0.0.2:5433",
        "OCF_RESKEY_pgdata": "/srv/pg", "OCF_RESKEY_replication_mode": "async", "OCF_RESKEY_force_promote": "yes",
    })
    assert isinstance(cfg, NodeConfig) and cfg.node == "db-1" and cfg.force_promote
    assert cfg.peers == {"db-2": ("10.0.0.2", 5433)}
    assert cfg.slot_of("db-2") == "pgbaton_db_2" and cfg.app_name == "db_1" == safe_name("DB-1")
    info = cfg.primary_conninfo()
    assert "host=10.0.0.2 port=5433" in info and "target_session_attrs=primary" in info
    assert "application_name=db_1" in info


def test_notification_env() -> None:
    prefix = "OCF_RESKEY_CRM_meta_notify_"
    note = notification({prefix + "type": "pre", prefix + "operation": "promote",
                         prefix + "promote_uname": "b ", prefix + "master_uname": "a"})
    assert note.kind == "pre" and note.operation == "promote" and note.promote == ("b",) and note.promoted == ("a",)


def test_segment_timeline_from_wal_file_names() -> None:
    seg = 16 * 1024 * 1024
    names = ["000000020000000000000003", "000000030000000000000003.partial", "000000030000000000000004",
             "00000003.history", "archive_status", "000000020000000100000000"]
    assert segment_timeline(parse_lsn("0/3000100"), seg, names) == 3
    assert segment_timeline(parse_lsn("0/4000000"), seg, names) == 3     # a boundary ends segment 3
    assert segment_timeline(parse_lsn("0/4000001"), seg, names) == 3
    assert segment_timeline(parse_lsn("1/100"), seg, names) == 2
    assert segment_timeline(parse_lsn("0/9000000"), seg, names) is None
