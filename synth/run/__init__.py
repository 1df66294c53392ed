"""Running a synthesis: the job every worker receives, what a worker does per image, the joblib
fan-out with resume, and publishing the finished dataset."""
