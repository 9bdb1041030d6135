"""`phishguard predict --scheduler/--workers`: the same scores as one process, on a LocalCluster
and on a real `dask scheduler` + `dask worker` processes over TCP, from files, globs, folders
and S3; counts add up, rejects keep their reasons, a killed worker changes nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client, LocalCluster

from phishguard import DataSourceError, PhishguardError
from phishguard.contract.problems import SchemaError
from phishguard.io import locked_folder
from phishguard.serving.batch import predict_file
from phishguard.serving.distributed import (
    _output_folders,
    dask_client,
    predict_command,
    predict_distributed,
)
from tests.support import free_port, synthetic_rows
from tests.support.dask_cluster import run_predict, tcp_cluster
from tests.support.s3 import BUCKET, FAKE_AWS, moto_s3


@pytest.fixture(scope="module")
def local_client() -> Iterator[Client]:
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def dirty_rows(n: int, seed: int) -> pd.DataFrame:
    """Rows as text, with three invalid ones (at rows 4, n/2 + 1 and n)."""
    table = synthetic_rows(n, seed).astype(str)
    table.loc[3, "SFH"] = "2"
    table.loc[n // 2, "port"] = "x"
    table.loc[n - 1, "Redirect"] = ""
    return table


def single_process(scorer, source: Path, tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    out, rejects = tmp_path / "single.parquet", tmp_path / "single.rejects.csv"
    predict_file(scorer, source, out, rejects)
    return pd.read_parquet(out), pd.read_csv(rejects, dtype=str)


def parts(folder: Path) -> pd.DataFrame:
    files = sorted(folder.glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def write_parts(table: pd.DataFrame, folder: Path, count: int, suffix: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    size = -(-len(table) // count)
    for index, start in enumerate(range(0, len(table), size)):
        piece = table.iloc[start : start + size]
        path = folder / f"in-{index:03d}{suffix}"
        piece.to_parquet(path, index=False) if suffix == ".parquet" else piece.to_csv(
            path, index=False
        )


def assert_same_scores(single: pd.DataFrame, distributed: pd.DataFrame) -> None:
    """Bit for bit: the float32 probabilities compared as numbers and by their bytes."""
    assert distributed["row"].tolist() == single["row"].tolist()
    assert distributed["phishing_probability"].to_numpy().tobytes() == (
        single["phishing_probability"].to_numpy().tobytes()
    )
    pd.testing.assert_frame_equal(distributed, single, check_dtype=False)


def test_real_dataset_in_parquet_parts_scores_as_one_process(
    local_client, scorer, package_dir, dataset_path, tmp_path
) -> None:
    single, _ = single_process(scorer, dataset_path, tmp_path)
    write_parts(pd.read_csv(dataset_path), tmp_path / "in", 3, ".parquet")
    summary = predict_distributed(
        local_client,
        str(tmp_path / "in"),
        str(tmp_path / "out"),
        str(tmp_path / "rej"),
        package_dir,
        partition_rows=4000,
    )
    assert (summary.rows, summary.scored, summary.rejected) == (11055, 11055, 0)
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 3  # a part per file
    assert_same_scores(single, parts(tmp_path / "out"))
    assert len(parts(tmp_path / "rej")) == 0


def test_one_large_row_group_is_cut_into_partitions(
    local_client, scorer, package_dir, dataset_path, tmp_path
) -> None:
    """A file written as one row group (pandas' default up to 1M rows) still spreads over the
    workers: its row group is read as equal slices, with the same global rows and scores."""
    single, _ = single_process(scorer, dataset_path, tmp_path)
    source = tmp_path / "one_group.parquet"
    pd.read_csv(dataset_path).to_parquet(source, index=False)
    assert pq.ParquetFile(source).metadata.num_row_groups == 1
    summary = predict_distributed(
        local_client,
        str(source),
        str(tmp_path / "out"),
        str(tmp_path / "rej"),
        package_dir,
        partition_rows=2000,
    )
    assert (summary.rows, summary.scored, summary.rejected) == (11055, 11055, 0)
    sizes = [len(pd.read_parquet(p)) for p in sorted((tmp_path / "out").glob("part-*.parquet"))]
    assert sizes == [1843] * 5 + [11055 - 5 * 1843]
    assert_same_scores(single, parts(tmp_path / "out"))


def test_real_dataset_csv_file_on_the_tcp_cluster(
    dask_cluster, scorer, package_dir, dataset_path, tmp_path
) -> None:
    single, _ = single_process(scorer, dataset_path, tmp_path)
    with Client(dask_cluster.address) as client:
        summary = predict_distributed(
            client, str(dataset_path), str(tmp_path / "out"), str(tmp_path / "rej"), package_dir
        )
    assert summary.rows == summary.scored == 11055
    assert_same_scores(single, parts(tmp_path / "out"))


def dask_settings(client: Client | None = None) -> list[tuple[bool, str, bool]]:
    """The three batch settings as this process sees them, or (with a `client`) as each worker
    and the scheduler see them. The function sent is nested, so it travels by value: the TCP
    workers cannot import the tests."""

    def settings() -> tuple[bool, str, bool]:
        import dask

        return (
            dask.config.get("distributed.worker.profile.enabled"),
            dask.config.get("distributed.admin.tick.interval"),
            dask.config.get("distributed.scheduler.work-stealing"),
        )

    if client is None:
        return [settings()]
    return [*client.run(settings).values(), client.run_on_scheduler(settings)]


def test_the_batch_dask_settings_reach_both_kinds_of_cluster(dask_cluster) -> None:
    """The README's route for `dask worker` (DASK_CONFIG at dask_config/) and `--workers N`
    both run without the profiler and with the slow monitors; Dask's defaults would differ."""
    assert dask_settings() == [(True, "20ms", True)]
    batch = (False, "1s", False)
    with Client(dask_cluster.address) as client:
        assert dask_settings(client) == [batch] * 3
    with dask_client(None, 2) as client:
        assert dask_settings(client) == [batch] * 3


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_invalid_rows_are_rejected_with_reasons_and_global_rows(
    local_client, scorer, package_dir, tmp_path, suffix
) -> None:
    table = dirty_rows(3000, 41)
    (tmp_path / "whole.csv").write_text(table.to_csv(index=False))
    single, single_rejects = single_process(scorer, tmp_path / "whole.csv", tmp_path)
    write_parts(table, tmp_path / "in", 4, suffix)
    summary = predict_distributed(
        local_client,
        str(tmp_path / "in" / f"in-*{suffix}"),
        str(tmp_path / "out"),
        str(tmp_path / "rej"),
        package_dir,
        partition_rows=500,
    )
    assert (summary.rows, summary.scored, summary.rejected) == (3000, 2997, 3)
    rejects = parts(tmp_path / "rej")
    assert rejects["row"].tolist() == [4, 1501, 3000]
    assert rejects["reason"].tolist() == [
        "SFH=2 not in {-1, 0, 1}",
        "port='x' is not a number",
        "Redirect is missing",
    ]
    assert rejects["reason"].tolist() == single_rejects["reason"].tolist()
    assert_same_scores(single, parts(tmp_path / "out"))


def test_wrong_columns_and_broken_files_fail_with_the_single_process_lines(
    local_client, scorer, package_dir, tmp_path
) -> None:
    wrong = tmp_path / "wrong.csv"
    synthetic_rows(10).drop(columns=["SFH"]).to_csv(wrong, index=False)
    with pytest.raises(SchemaError) as single:
        predict_file(scorer, wrong, tmp_path / "s.parquet", tmp_path / "s.csv")
    with pytest.raises(SchemaError) as distributed:
        predict_distributed(
            local_client, str(wrong), str(tmp_path / "o"), str(tmp_path / "r"), package_dir
        )
    assert str(distributed.value) == str(single.value)
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.*"))
    with pytest.raises(PhishguardError, match="must differ from each other and from the input"):
        predict_distributed(local_client, str(wrong), str(wrong), str(tmp_path / "r"), package_dir)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(DataSourceError, match=r"broken\.parquet: not a readable Parquet file"):
        predict_distributed(
            local_client, str(broken), str(tmp_path / "o"), str(tmp_path / "r"), package_dir
        )


@pytest.mark.e2e
def test_s3_in_and_out_through_moto(
    dask_cluster, scorer, package_dir, tmp_path, monkeypatch
) -> None:
    table = dirty_rows(2000, 43)
    (tmp_path / "whole.csv").write_text(table.to_csv(index=False))
    single, _ = single_process(scorer, tmp_path / "whole.csv", tmp_path)
    with moto_s3() as s3, Client(dask_cluster.address) as client:
        for variable, value in FAKE_AWS.items():
            monkeypatch.setenv(variable, value)
        monkeypatch.setenv("AWS_ENDPOINT_URL", s3.meta.endpoint_url)
        for index, start in enumerate(range(0, 2000, 700)):
            body = table.iloc[start : start + 700].to_parquet(index=False)
            s3.put_object(Bucket=BUCKET, Key=f"crawl/in-{index}.parquet", Body=body)
        summary = predict_distributed(
            client,
            f"s3://{BUCKET}/crawl/",
            f"s3://{BUCKET}/scores",
            f"s3://{BUCKET}/scores.rejects",
            package_dir,
        )
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
        local = tmp_path / "fetched"
        for key in keys:
            (local / key).parent.mkdir(parents=True, exist_ok=True)
            (local / key).write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert (summary.rows, summary.scored, summary.rejected) == (2000, 1997, 3)
    assert sorted(k for k in keys if k.startswith("scores/")) == [
        f"scores/part-0000{i}.parquet" for i in range(3)
    ]
    assert_same_scores(single, parts(local / "scores"))
    assert parts(local / "scores.rejects")["row"].tolist() == [4, 1001, 2000]


def test_unreachable_scheduler_is_one_line_within_bounded_time(package_dir, tmp_path) -> None:
    source = tmp_path / "in.csv"
    synthetic_rows(10).to_csv(source, index=False)
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    result = run_predict(source, tmp_path / "out", package_dir, "--scheduler", address, check=False)
    elapsed = time.monotonic() - started
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"phishguard: error: cannot reach the Dask scheduler at {address}")
    assert elapsed < 40
    assert not (tmp_path / "out").exists()


def test_cli_scores_on_the_cluster_named_by_the_environment(
    dask_cluster, package_dir, tmp_path
) -> None:
    source = tmp_path / "in.csv"
    dirty_rows(500, 45).to_csv(source, index=False)
    result = run_predict(
        source, tmp_path / "out", package_dir, DASK_SCHEDULER_ADDRESS=dask_cluster.address
    )
    assert result.stderr.strip().splitlines()[-1] == (
        f"phishguard: scored 497 of 500 rows into {tmp_path / 'out'}; "
        f"3 rejected into {tmp_path / 'out.rejects'}"
    )
    assert len(parts(tmp_path / "out")) == 497
    assert parts(tmp_path / "out.rejects")["row"].tolist() == [4, 251, 500]


def test_workers_flag_needs_no_address(package_dir, tmp_path) -> None:
    with pytest.raises(PhishguardError, match="--workers starts a local cluster"):
        predict_command("x.csv", str(tmp_path / "o"), None, str(package_dir), "tcp://1.2.3.4:1", 2)


@pytest.mark.e2e
def test_killing_a_worker_mid_job_changes_nothing(package_dir, tmp_path) -> None:
    rows = 2_000_000
    source = tmp_path / "in"
    source.mkdir()
    table = synthetic_rows(rows, 44).drop(columns=["Result"])
    for index in range(4):  # 4 files × 10 row groups of 50,000 rows: 40 partitions
        piece = pa.Table.from_pandas(
            table.iloc[index * 500_000 : (index + 1) * 500_000], preserve_index=False
        )
        pq.write_table(piece, source / f"in-{index}.parquet", row_group_size=50_000)
    with tcp_cluster(tmp_path / "cluster", workers=2) as cluster, Client(cluster.address) as client:
        quiet = predict_distributed(
            client,
            str(source),
            str(tmp_path / "quiet"),
            str(tmp_path / "quiet.rej"),
            package_dir,
            partition_rows=50_000,
        )
        outcome: dict[str, object] = {}

        def job() -> None:
            try:
                outcome["summary"] = predict_distributed(
                    client,
                    str(source),
                    str(tmp_path / "out"),
                    str(tmp_path / "out.rej"),
                    package_dir,
                    partition_rows=50_000,
                )
            except BaseException as error:  # reported by the assertion below
                outcome["error"] = error

        running = threading.Thread(target=job)
        running.start()
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob(".out.*.part/part-0000[2-9].parquet")):
            assert time.monotonic() < deadline and running.is_alive(), outcome
            time.sleep(0.05)
        cluster.kill_worker(0)  # a few parts written, most still to come
        running.join(timeout=300)
        assert not running.is_alive()
        assert len(client.scheduler_info()["workers"]) == 1  # the job finished on the other
    assert "error" not in outcome, outcome
    summary = outcome["summary"]
    assert (quiet.rows, quiet.scored, quiet.rejected) == (rows, rows, 0)
    assert (summary.rows, summary.scored, summary.rejected) == (rows, rows, 0)
    quiet_parts = sorted((tmp_path / "quiet").iterdir())
    assert len(quiet_parts) == 40
    for part in quiet_parts:
        assert (tmp_path / "out" / part.name).read_bytes() == part.read_bytes(), part.name
        rejects = (tmp_path / "out.rej" / part.name).read_bytes()
        assert rejects == (tmp_path / "quiet.rej" / part.name).read_bytes(), part.name


def test_a_later_run_removes_the_staging_folders_of_a_killed_one(tmp_path) -> None:
    """A run killed with SIGKILL leaves its hidden staging folders; the next run that completes
    the same output removes them, but never one a live run holds."""
    out, rejects = tmp_path / "out", tmp_path / "out.rejects"
    stale = tmp_path / ".out.deadbeef.part"
    stale.mkdir()
    (stale / "part-00000.parquet").write_bytes(b"half")
    live = tmp_path / ".out.rejects.cafef00d.part"
    live.mkdir()
    with locked_folder(live), _output_folders(str(out), str(rejects), {}) as (at, rejects_at):
        for folder in (at, rejects_at):
            pq.write_table(pa.table({"row": [1]}), f"{folder}/part-00000.parquet")
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in out.iterdir()) == ["part-00000.parquet"]
