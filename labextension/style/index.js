import './base.css';
import './evaluation.css';
import './picker.css';
import './studies.css';
