DROP TABLE drill_rotation;
