"""De-identification: audit a repository (:mod:`.audit`) and de-identify with a secret key (:mod:`.deidentify`)."""
