import impilo_nb


def test_all_is_exactly_the_public_surface():
    public = {name for name in dir(impilo_nb) if not name.startswith("_")}
    submodules = {"client", "errors", "fields", "models", "sandbox", "serving", "frames", "eventlog", "receiver", "ids"}
    submodules |= {"transport", "testing", "resources", "responses", "dashboard"}  # dashboard: imported by its page only
    assert set(impilo_nb.__all__) - {"__version__"} == public - submodules | {"widgets"}


def test_design_names_exist():
    names = ("connect", "ImpiloClient", "Patient", "Address", "Site", "Sandbox", "Chaos", "sync", "EventLog")
    for name in (*names, "ValidationError", "APIStatusError"):
        assert hasattr(impilo_nb, name)
    assert hasattr(impilo_nb.widgets, "PatientForm") and hasattr(impilo_nb.widgets, "SyncView")
