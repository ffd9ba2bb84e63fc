import pandas as pd

from impilo_nb.frames import PATIENT_COLUMNS, patient_frame
from impilo_nb.models import Patient


def test_empty_frame_has_every_column_with_its_dtype():
    frame = patient_frame([])
    assert list(frame.columns) == PATIENT_COLUMNS
    assert str(frame["id"].dtype) == "Int64" and str(frame["enrolled"].dtype) == "boolean"


def test_rows_are_flattened_and_typed():
    frame = patient_frame(
        [
            Patient(
                id=1,
                first_name="A",
                last_name="B",
                date_of_birth="1980-01-02",
                enrolled=True,
                address={"lineOne": "1", "city": "C", "state": "S", "zipCode": "Z", "country": "US"},
            ),
            {"id": 2, "firstName": "C", "lastName": "D", "legacyCode": "x"},
        ]
    )
    assert frame.loc[0, "address.city"] == "C" and pd.isna(frame.loc[1, "address.city"])
    assert frame.loc[0, "dateOfBirth"] == pd.Timestamp("1980-01-02") and pd.isna(frame.loc[1, "dateOfBirth"])
    assert frame.loc[0, "enrolled"] and pd.isna(frame.loc[1, "enrolled"])
    assert list(frame.columns)[-1] == "legacyCode"  # server extras kept, after the known columns
