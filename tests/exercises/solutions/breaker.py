"""Reference solution: five failures in a row are not chance at 10% noise; probe after 3 s."""

settings = {"policy": "consecutive", "fail_max": 5, "open_timeout_s": 3.0}
