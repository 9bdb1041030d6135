"""`phishguard.contract.csv_reader.read_upload`: the service's CSV uploads, through the one reader."""

import pandas as pd
import pytest

from phishguard import DataSourceError
from phishguard.contract.csv_reader import CsvHeaderError, read_upload
from phishguard.contract.problems import TooManyRecordsError
from phishguard.contract.schema import FEATURES
from tests.support import synthetic_rows


def test_an_upload_is_read_as_text_by_the_one_reader(tmp_path):
    path = tmp_path / "upload.csv"
    synthetic_rows(3)[list(FEATURES)].to_csv(path, index=False)
    table = read_upload(path, max_rows=3)
    assert list(table.columns) == list(FEATURES) and len(table) == 3
    assert all(pd.api.types.is_string_dtype(dtype) for dtype in table.dtypes)


def test_an_upload_over_the_limit_is_refused_reading_one_row_past_it(tmp_path):
    path = tmp_path / "upload.csv"
    synthetic_rows(50)[list(FEATURES)].to_csv(path, index=False)
    with pytest.raises(TooManyRecordsError, match=r"^11 rows in one upload; the limit is 10$"):
        read_upload(path, max_rows=10)


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (b"SFH;port\n1;1\n", CsvHeaderError, "the upload: the header is ';'-delimited"),
        (b"SFH,SFH\n1,1\n", CsvHeaderError, "the upload: duplicated column(s) SFH"),
        (b"SFH,port\n1,\x00\n", DataSourceError, "the upload: a NUL byte on line 2"),
    ],
)
def test_an_unreadable_upload_is_one_error_naming_it(tmp_path, text, error, message):
    path = tmp_path / "upload.csv"
    path.write_bytes(text)
    with pytest.raises(error) as raised:
        read_upload(path, max_rows=10)
    assert str(raised.value).startswith(message)
