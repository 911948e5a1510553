"""Video in and out: probing, the frame plan, streaming reader and writer, the similarity filter, test clips."""
